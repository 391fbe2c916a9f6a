// The benchmark (not a test): what visitors feel while the action deploys and rolls
// back under an open load, for both strategies; how soon the old release serves again
// after a release that breaks after the traffic switch; deploy wall time against a plain
// ssh script; a 3-host fleet against one host. Writes bench/results.md and results.json.
//   npm run bench                       every part (about 12 minutes)
//   npm run bench -- restore            some parts: reload blue-green restore wall fleet
// Parts alone (or fewer requests) write bench/.build/results.md instead. ZDD_BENCH_REQUESTS: fewer requests
// per run under load (default 10000) while developing; ZDD_ACTION_SCRIPT: another bundle.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import * as path from 'node:path'
import { hostDown, hostUp, ROOT } from '../__tests__/integration/kit.js'
import type { Strategy } from './action-runs.js'
import { ActionFailed } from './action-runs.js'
import {
  deploysAndRollbacks,
  firstDeploys,
  fleet,
  FLEET_HOSTS,
  restores,
  slowImport,
  wallTime,
  type Hosts,
  type Results
} from './parts.js'
import { json, loadRow, markdown, type RunInfo } from './report.js'

const PARTS = ['reload', 'blue-green', 'restore', 'wall', 'fleet'] as const
type Part = (typeof PARTS)[number]

function partsFrom(args: string[]): Part[] {
  const unknown = args.filter(a => !(PARTS as readonly string[]).includes(a))
  if (unknown.length)
    throw new Error(`unknown part(s) ${unknown.join(', ')}; the parts are ${PARTS.join(', ')}`)
  return args.length ? (args as Part[]) : [...PARTS]
}

function describeAction(): string {
  const bundle = process.env.ZDD_ACTION_SCRIPT || 'dist/index.js'
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim()
  const changed = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length
  return `${bundle}, bundled from commit ${git(['rev-parse', '--short', 'HEAD'])}${changed ? ` with ${changed} uncommitted file(s) in src/` : ''}`
}

/** The text of the run so far; `pending`: what has not run yet (the files are written after each part). */
function runInfo(
  parts: Part[],
  t0: number,
  loadAtStart: number,
  problems: string[],
  pending?: string
): RunInfo {
  const env = (name: string) => (process.env[name] ? `${name}=${process.env[name]} ` : '')
  return {
    command: `${env('ZDD_ACTION_SCRIPT')}${env('ZDD_BENCH_REQUESTS')}npm run bench${parts.length === PARTS.length ? '' : ` -- ${parts.join(' ')}`}`,
    startedAt: new Date(t0).toISOString(),
    machine: `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, Node ${process.version}`,
    action: describeAction(),
    loadAverage: [loadAtStart, loadavg()[0]],
    minutes: (Date.now() - t0) / 60_000,
    problems: pending ? [...problems, `Written before the end, after ${pending}.`] : problems
  }
}

/** Where the results go: bench/ for a whole run, bench/.build/ for parts or fewer requests. */
function resultsDir(parts: Part[]): string {
  return parts.length === PARTS.length && !process.env.ZDD_BENCH_REQUESTS
    ? path.join(ROOT, 'bench')
    : path.join(ROOT, 'bench', '.build')
}

function write(dir: string, info: RunInfo, results: Results): string {
  mkdirSync(dir, { recursive: true })
  const md = markdown(info, results)
  writeFileSync(path.join(dir, 'results.md'), md)
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify(json(info, results), null, 2) + '\n')
  return md
}

/** Runs the parts in order; `part` reports a failure and goes on. */
async function runParts(
  hosts: Hosts,
  parts: Part[],
  results: Results,
  part: (title: string, body: () => Promise<void>) => Promise<void>
): Promise<void> {
  await part('first deploys (migrations, pip)', () => firstDeploys(hosts))
  const strategies: Strategy[] = ['reload', 'blue-green']
  for (const s of strategies) {
    if (!parts.includes(s)) continue
    await part(`${s}: deploys and rollbacks under load`, () =>
      deploysAndRollbacks(hosts, s, results)
    )
    await part(`${s}: slow import under load`, () => slowImport(hosts, s, results))
  }
  if (parts.includes('restore'))
    for (const s of strategies)
      await part(`${s}: broken releases under load`, () => restores(hosts, s, results))
  if (parts.includes('wall'))
    for (const s of strategies)
      await part(`${s}: deploy wall time against the plain script`, () =>
        wallTime(hosts, s, results)
      )
  if (parts.includes('fleet')) await part('fleet', () => fleet(hosts, results))
}

/** Every host the benchmark may start (the fleet part adds three). */
const HOSTS = ['bench-r', 'bench-g', ...FLEET_HOSTS]

/** Interrupted (Ctrl-C, or `timeout`): the hosts go down before the process ends. */
function downOnSignal(): void {
  const down = (signal: NodeJS.Signals) => {
    console.log(`${signal}: taking the benchmark's hosts down ...`)
    void Promise.allSettled(HOSTS.map(hostDown)).then(() => process.exit(130))
  }
  process.once('SIGINT', down)
  process.once('SIGTERM', down)
}

async function main(): Promise<void> {
  downOnSignal()
  const parts = partsFrom(process.argv.slice(2))
  const dir = resultsDir(parts)
  const t0 = Date.now()
  const loadAtStart = loadavg()[0]
  const problems: string[] = []
  const results: Results = { runs: [], restores: [], wall: [] }
  /** One part; its failure is reported and the next part still runs. */
  const part = async (title: string, body: () => Promise<void>) => {
    const runs = results.runs.length
    const p0 = Date.now()
    console.log(`${title} ...`)
    try {
      await body()
    } catch (error) {
      const text = error instanceof ActionFailed ? error.message : String(error)
      problems.push(`${title}: ${text}`)
      console.log(`${title} FAILED: ${text}`)
    }
    for (const r of results.runs.slice(runs)) console.log(loadRow(r))
    console.log(`(${((Date.now() - p0) / 1000).toFixed(0)} s)`)
    write(dir, runInfo(parts, t0, loadAtStart, problems, `"${title}"`), results)
  }
  console.log('starting hosts ...')
  const started = await Promise.allSettled([
    hostUp('bench-r', 'fixed'),
    hostUp('bench-g', { style: 'blue-green' })
  ])
  try {
    const [reload, blueGreen] = started.map(s => {
      if (s.status === 'rejected') throw s.reason
      return s.value
    })
    await runParts({ reload, 'blue-green': blueGreen }, parts, results, part)
  } finally {
    await Promise.allSettled(['bench-r', 'bench-g'].map(hostDown))
  }
  console.log(write(dir, runInfo(parts, t0, loadAtStart, problems), results))
  console.log(`written to ${path.relative(ROOT, dir)}/results.md and results.json`)
  if (problems.length) process.exitCode = 1
}

await main()
