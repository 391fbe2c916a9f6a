// action.yml is what the Marketplace and the runner read; the README's Inputs and Outputs
// tables are what users read. They must say the same: every input and output of action.yml has
// a row, with the same default (or the same words after "Default:" when the default is
// computed), no row names an input or output action.yml lacks, and the `hosts` output lists
// the same fields in both, every field of a host's result among them. The README's first
// workflow uses only inputs that exist and gives every required one.
import { describe, expect, it } from '@jest/globals'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { parse } from 'yaml'

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8')

interface ActionInput {
  description: string
  required?: boolean
  default?: string
}
interface Action {
  inputs: Record<string, ActionInput>
  outputs: Record<string, { description: string }>
}

const action = parse(read('action.yml')) as Action
const readme = read('README.md')

/** The rows of the table under `## heading`: first cell (backticks removed) -> the cells. */
function table(markdown: string, heading: string): Map<string, string[]> {
  const start = markdown.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`README has no "## ${heading}" section`)
  const end = markdown.indexOf('\n## ', start + 1)
  const rows = new Map<string, string[]>()
  for (const line of markdown.slice(start, end < 0 ? undefined : end).split('\n')) {
    if (!line.startsWith('|') || /^\|\s*(input|output)\s*\|/.test(line) || /^\|-/.test(line))
      continue
    const cells = splitRow(line)
    const name = cells[0].replace(/`/g, '')
    if (rows.has(name)) throw new Error(`README's ${heading} table names ${name} twice`)
    rows.set(name, cells.slice(1))
  }
  return rows
}

/** The cells of a markdown table row (a | inside backticks stays in its cell). */
function splitRow(line: string): string[] {
  const cells: string[] = []
  let cell = ''
  let code = false
  for (const char of line.trim().slice(1, -1)) {
    if (char === '`') code = !code
    if (char === '|' && !code) {
      cells.push(cell.trim())
      cell = ''
    } else cell += char
  }
  cells.push(cell.trim())
  return cells
}

/** What a README default cell claims, as action.yml would say it. */
function claimed(cell: string): { required: boolean; literal?: string; words?: string } {
  if (cell === '(required)') return { required: true }
  const literal = /^`([^`]*)`$/.exec(cell)
  if (literal) return { required: false, literal: literal[1] }
  return { required: false, words: cell.replace(/`/g, '') }
}

/** The backticked words of a text, as a sorted set. */
function backticked(text: string): string[] {
  return [...new Set([...text.matchAll(/`([^`]+)`/g)].map(m => m[1]))].sort()
}

/** The field names of a TypeScript interface in a source file. */
function fields(file: string, name: string): string[] {
  const source = read(file)
  const start = source.indexOf(`export interface ${name} {`)
  if (start < 0) throw new Error(`${file} has no interface ${name}`)
  const body = source.slice(start, source.indexOf('\n}', start))
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map(m => m[1])
}

describe('README Inputs table and action.yml', () => {
  const rows = table(readme, 'Inputs')
  const inputs = Object.entries(action.inputs)

  it('has a row for every input of action.yml, and none for an input it lacks', () => {
    expect([...rows.keys()].sort()).toEqual(inputs.map(([name]) => name).sort())
  })

  it.each(inputs)('%s: the same default and whether it is required', (name, input) => {
    const cell = rows.get(name)?.[0]
    expect(cell).toBeDefined()
    const claim = claimed(cell ?? '')
    expect({ name, required: claim.required }).toEqual({ name, required: input.required === true })
    if (claim.required) return
    const value = input.default ?? ''
    if (value !== '') {
      // a literal default is written as it is, in backticks
      expect({ name, readme: cell }).toEqual({ name, readme: `\`${value}\`` })
    } else if (claim.literal !== undefined || claim.words) {
      // an empty default the action computes: both say how, in the same words
      const words = claim.literal ?? claim.words ?? ''
      expect({ name, description: input.description }).toEqual({
        name,
        description: expect.stringContaining(`Default: ${words}`)
      })
    } else {
      expect({ name, description: input.description }).toEqual({
        name,
        description: expect.not.stringContaining('Default:')
      })
    }
  })
})

describe('README Outputs table and action.yml', () => {
  const rows = table(readme, 'Outputs')

  it('has a row for every output of action.yml, and none for an output it lacks', () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(action.outputs).sort())
  })

  it('names the same fields of the hosts output, and every field of a host result', () => {
    const inReadme = backticked(rows.get('hosts')?.[0] ?? '')
    const inAction = backticked(action.outputs.hosts.description)
    expect(inReadme).toEqual(inAction)
    const result = [
      ...fields('src/core/host-result.ts', 'HostResult'),
      ...fields('src/core/host-result.ts', 'StepTiming'),
      ...fields('src/core/host-result.ts', 'Finding')
    ]
    expect(result.filter(f => !inAction.includes(f))).toEqual([])
  })
})

describe("README's first workflow", () => {
  const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  const workflow = parse(yaml) as {
    jobs: Record<string, { steps: { uses?: string; with?: Record<string, string> }[] }>
  }
  const step = Object.values(workflow.jobs)
    .flatMap(job => job.steps)
    .find(s => s.uses?.includes('/flask-zero-downtime-deploy@'))

  it('is on the first screen: the first code block, within the first 40 lines', () => {
    expect(readme.split('\n').findIndex(l => l === '```yaml')).toBeLessThan(15)
    expect(readme.split('\n').findIndex(l => l.startsWith('jobs:'))).toBeLessThan(40)
  })

  it('gives every required input and only inputs action.yml has', () => {
    const given = Object.keys(step?.with ?? {})
    expect(given.filter(name => !(name in action.inputs))).toEqual([])
    const required = Object.entries(action.inputs).filter(([, i]) => i.required)
    expect(required.map(([name]) => name).filter(name => !given.includes(name))).toEqual([])
  })

  it('is a subset of examples/workflows/deploy.yml, which adds the optional inputs', () => {
    const example = parse(read('examples/workflows/deploy.yml')) as typeof workflow
    const full = Object.values(example.jobs)
      .flatMap(job => job.steps)
      .find(s => s.uses?.includes('/flask-zero-downtime-deploy@'))
    for (const [name, value] of Object.entries(step?.with ?? {}))
      expect({ name, value: full?.with?.[name] }).toEqual({ name, value })
  })
})

describe('README length', () => {
  it('is at most about 300 lines; the rest is in docs/', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(320)
  })
})
