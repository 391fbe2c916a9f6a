// Bundles src/index.ts into dist/index.js (ESM) for the `node24` runner.
// ssh2's optional native addons are left out: ssh2 falls back to pure JS.
// ZDD_BUNDLE_OUT: another output file (a private bundle while dist/ is in use).
import { build } from 'esbuild'

await build({
  entryPoints: ['src/index.ts'],
  outfile: process.env.ZDD_BUNDLE_OUT || 'dist/index.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: ['cpu-features', '*.node'],
  // The remote Python helper (src/host/remote-helper.py) is carried as a string.
  loader: { '.py': 'text' },
  legalComments: 'none',
  // Bundled CommonJS dependencies use require, __dirname and __filename; ESM has none.
  banner: {
    js: [
      "import { createRequire as __zddCreateRequire } from 'node:module';",
      "import { fileURLToPath as __zddFileURLToPath } from 'node:url';",
      'const require = __zddCreateRequire(import.meta.url);',
      'const __filename = __zddFileURLToPath(import.meta.url);',
      "const __dirname = __zddFileURLToPath(new URL('.', import.meta.url));"
    ].join('\n')
  },
  logLevel: 'warning'
})
