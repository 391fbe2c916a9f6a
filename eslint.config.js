import js from '@eslint/js'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'
import importX from 'eslint-plugin-import-x'
import tseslint from 'typescript-eslint'

// The layers of src/, from the bottom: each may import only from the layers below it.
//   core       what every layer shares (log, host results, targets, release ids, run stamps, cancellation)
//   transport  SSH, HTTP over SSH, quoting, remote commands
//   host       what is read and done on one server (preflight, checks, cutover, ...)
//   modes      deploy, rollback, check and fleets, over the host layer
//   action     the GitHub layer: inputs, outputs, summary, deployments; main.ts and index.ts on top
const LAYERS = ['core', 'transport', 'host', 'modes', 'action']
const layerZones = LAYERS.flatMap((layer, i) =>
  LAYERS.slice(i + 1).map(above => ({
    target: `./src/${layer}`,
    from: `./src/${above}`,
    message: `src/${layer} is below src/${above}: it may import only from ${LAYERS.slice(0, i).join(', ') || 'nothing else in src/'}`
  }))
)
const entryZones = LAYERS.map(layer => ({
  target: `./src/${layer}`,
  from: ['./src/main.ts', './src/index.ts'],
  message: 'main.ts and index.ts are the top: nothing imports them'
}))

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'build/',
      'examples/',
      'hostkit/',
      'bench/.build/',
      '.test-results/'
    ]
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly' }
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }]
    }
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })]
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: [...layerZones, ...entryZones] }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // The GitHub toolkit belongs to the action layer (and main.ts).
      'no-restricted-imports': [
        'error',
        {
          paths: ['@actions/core', '@actions/github'].map(name => ({
            name,
            message: 'only src/action/ and src/main.ts talk to GitHub'
          }))
        }
      ]
    }
  },
  {
    files: ['src/action/**/*.ts', 'src/main.ts'],
    rules: { 'no-restricted-imports': 'off' }
  }
)
