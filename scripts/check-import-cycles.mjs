#!/usr/bin/env node
// Fails when modules under src/ import each other in a cycle, type-only imports
// included (eslint's import-x/no-cycle leaves those out). Run by `npm run lint`.
import { readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'

const root = path.resolve(import.meta.dirname, '..', 'src')
const files = readdirSync(root, { recursive: true })
  .filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map(f => path.join(root, f))

/** Every relative module a file imports or re-exports, as an absolute .ts path. */
function importsOf(file) {
  const text = readFileSync(file, 'utf8')
  const specs = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gms)]
  return specs.map(m => path.resolve(path.dirname(file), m[1].replace(/\.js$/, '.ts')))
}

const graph = new Map(files.map(f => [f, importsOf(f).filter(t => t !== f)]))

// Tarjan's strongly connected components: any component of two or more files is a cycle.
let index = 0
const indexOf = new Map()
const low = new Map()
const stack = []
const onStack = new Set()
const cycles = []
function visit(v) {
  indexOf.set(v, index)
  low.set(v, index++)
  stack.push(v)
  onStack.add(v)
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue
    if (!indexOf.has(w)) {
      visit(w)
      low.set(v, Math.min(low.get(v), low.get(w)))
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), indexOf.get(w)))
  }
  if (low.get(v) !== indexOf.get(v)) return
  const component = []
  let w
  do {
    w = stack.pop()
    onStack.delete(w)
    component.push(path.relative(path.dirname(root), w))
  } while (w !== v)
  if (component.length > 1) cycles.push(component.sort())
}
for (const f of graph.keys()) if (!indexOf.has(f)) visit(f)

if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.join(' <-> ')}`)
  process.exit(1)
}
