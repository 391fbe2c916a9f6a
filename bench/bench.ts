// Benchmarks (not tests): zero failed requests under load during deploys and
// rollbacks, deploy time against a plain ssh script, HUP-to-verified time,
// SSH connections per host, and a 3-host fleet against one host.
// Run with `npm run bench` (root); writes bench/results.md and bench/results.json.
import { execFile, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import * as http from 'node:http'
import { loadavg } from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'
import {
  appCopy,
  authorize,
  hostDown,
  hostUp,
  inputsFor,
  ROOT,
  rootSh,
  runAction,
  type ActionRun,
  type KitHost
} from '../__tests__/integration/kit.js'

const execFileAsync = promisify(execFile)

interface LoadResult {
  sent: number
  failed: number
  seconds: number
  rate: number
  failures: string[]
  /** Epoch seconds of the first and last failed request (0 when none failed). */
  firstFailure: number
  lastFailure: number
  startedAt: number
}

/** Sends GET /health to the host's Nginx at `rate` req/s until `count` requests or `maxSeconds`. */
async function load(
  host: KitHost,
  rate: number,
  count: number,
  maxSeconds: number,
  whileRunning: () => Promise<void>
): Promise<LoadResult> {
  // a new connection per request, as independent clients do (no client-side keep-alive races)
  const agent = new http.Agent({ keepAlive: false, maxSockets: 256 })
  const started = Date.now()
  const result: LoadResult = {
    sent: 0,
    failed: 0,
    seconds: 0,
    rate: 0,
    failures: [],
    firstFailure: 0,
    lastFailure: 0,
    startedAt: started / 1000
  }
  const failedNow = (what: string) => {
    const now = Date.now() / 1000
    result.failed++
    if (!result.firstFailure) result.firstFailure = now
    result.lastFailure = now
    if (result.failures.length < 10)
      result.failures.push(`+${(now - started / 1000).toFixed(2)} s ${what}`)
  }
  let inFlight = 0
  let stop = false
  const one = () =>
    new Promise<void>(resolve => {
      inFlight++
      const req = http.get(
        { host: host.ip, port: 80, path: '/health', agent, timeout: 10_000 },
        res => {
          res.resume()
          res.on('end', () => {
            if (res.statusCode !== 200) failedNow(`HTTP ${res.statusCode}`)
            inFlight--
            resolve()
          })
        }
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', error => {
        failedNow(error.message)
        inFlight--
        resolve()
      })
    })
  const pending: Promise<void>[] = []
  const driver = (async () => {
    const interval = 1000 / rate
    while (!stop && result.sent < count && Date.now() - started < maxSeconds * 1000) {
      const due = started + result.sent * interval
      const wait = due - Date.now()
      if (wait > 0) await new Promise(r => setTimeout(r, wait))
      if (inFlight >= 128) {
        await new Promise(r => setTimeout(r, 2))
        continue
      }
      result.sent++
      pending.push(one())
    }
  })()
  await whileRunning()
  // keep the load on until the count is reached (bounded by maxSeconds)
  await driver
  stop = true
  await Promise.all(pending)
  agent.destroy()
  result.seconds = (Date.now() - started) / 1000
  result.rate = Math.round(result.sent / result.seconds)
  return result
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = Date.now()
  const value = await fn()
  return [(Date.now() - t0) / 1000, value]
}

function stepMs(hostsJson: string, names: string[]): number {
  const steps = (JSON.parse(hostsJson)[0].steps as { name: string; ms: number }[]).filter(s =>
    names.includes(s.name)
  )
  return steps.reduce((n, s) => n + s.ms, 0)
}

/** One deploy or rollback on the load's clock: when, which release, what its own probe saw. */
/** `preflight 0.45 s, lock 0.06 s, ...`: where one deploy spends its time. */
function stepTimeline(hostsJson: string): string {
  const steps = (JSON.parse(hostsJson) as { steps: { name: string; ms: number }[] }[])[0].steps
  return steps.map(s => `${s.name} ${(s.ms / 1000).toFixed(2)} s`).join(', ')
}

function span(fromEpoch: number, run: ActionRun): string {
  const h = JSON.parse(run.outputs.hosts)[0] as {
    release: string
    status: string
    failedRequests: number
    probeRequests: number
  }
  return `${new Date(fromEpoch * 1000).toISOString()} .. ${new Date().toISOString()} ${h.release} ${h.status}, probe ${h.failedRequests} of ${h.probeRequests} failed`
}

/** When requests failed: the timeline of deploys and the host's logs around the failures. */
async function evidence(host: KitHost, r: LoadResult, timeline: string[]): Promise<string> {
  if (r.failed === 0) return ''
  const since = Math.floor(r.firstFailure) - 10
  const until = Math.ceil(r.lastFailure) + 5
  const logs = await rootSh(
    host,
    `journalctl -u myapp --since @${since} --until @${until} --no-pager -o short-iso-precise | tail -n 80; echo '--- /var/log/nginx/error.log (last 20 lines)'; tail -n 20 /var/log/nginx/error.log`
  )
  return [
    `${r.failed} failed between ${new Date(r.firstFailure * 1000).toISOString()} and ${new Date(r.lastFailure * 1000).toISOString()}`,
    '--- runs',
    ...timeline,
    '--- journalctl -u myapp around the failures',
    logs.trim()
  ].join('\n')
}

async function main(): Promise<void> {
  const command = 'npm run bench'
  const startedAt = new Date().toISOString()
  // The machine is shared: its load says how far the timings are from an idle machine's.
  const loadAtStart = loadavg()[1]
  console.log('starting hosts ...')
  // ZDD_BENCH_HOSTS: another prefix for the four host names (when bn1..bn4 are in use).
  const names = [1, 2, 3, 4].map(i => `${process.env.ZDD_BENCH_HOSTS || 'bn'}${i}`)
  const [single, f1, f2, f3] = await Promise.all(names.map(name => hostUp(name, 'fixed')))
  await Promise.all([authorize(f2, f1), authorize(f3, f1)])
  try {
    let n = 0
    const deploy = async (host: KitHost, extra: Record<string, string> = {}) => {
      const run = await runAction(
        inputsFor(host, { source: appCopy(), 'release-id': `b${++n}`, ...extra })
      )
      if (run.outputs.status !== 'deployed')
        throw new Error(`deploy failed: ${run.stdout.slice(-2000)}`)
      return run
    }
    await deploy(single) // warm up: first migration, first pip

    // 1. load during deploys and during rollbacks
    const rate = 250
    const target = 10_000
    console.log(`load during deploys: ${target} requests at ${rate}/s through Nginx ...`)
    let deploysDuring = 0
    const deployTimeline: string[] = []
    const duringDeploys = await load(single, rate, target, 90, async () => {
      const until = Date.now() + (target / rate) * 1000 - 3000
      while (Date.now() < until) {
        const from = Date.now() / 1000
        const run = await deploy(single)
        deployTimeline.push(span(from, run))
        deploysDuring++
      }
    })
    const deployEvidence = await evidence(single, duringDeploys, deployTimeline)
    console.log(`load during rollbacks ...`)
    let rollbacksDuring = 0
    const rollbackTimeline: string[] = []
    const ids = [`b${n - 1}`, `b${n}`]
    const duringRollbacks = await load(single, rate, target, 90, async () => {
      const until = Date.now() + (target / rate) * 1000 - 3000
      while (Date.now() < until) {
        const from = Date.now() / 1000
        const run = await runAction(
          inputsFor(single, { mode: 'rollback', 'rollback-to': ids[rollbacksDuring % 2] })
        )
        if (run.outputs.status !== 'rolled-back')
          throw new Error(`rollback failed: ${run.stdout.slice(-2000)}`)
        rollbackTimeline.push(span(from, run))
        rollbacksDuring++
      }
    })
    const rollbackEvidence = await evidence(single, duringRollbacks, rollbackTimeline)

    // 2. deploy wall time: the action vs a plain ssh script doing the same steps, interleaved
    console.log('deploy wall time: action vs plain ssh script ...')
    const envFile = path.join('/var/lib/zdd-hostkit/hosts', single.name, 'host.env')
    const ours: number[] = []
    const plain: number[] = []
    const hupToVerified: number[] = []
    const connections: number[] = []
    let timeline = ''
    for (let i = 0; i < 5; i++) {
      const [t, run] = await timed(() => deploy(single))
      ours.push(t)
      hupToVerified.push(stepMs(run.outputs.hosts, ['reload', 'verify']) / 1000)
      connections.push(JSON.parse(run.outputs.hosts)[0].connections)
      if (i === 2) timeline = stepTimeline(run.outputs.hosts)
      const [p] = await timed(async () => {
        execFileSync(
          path.join(ROOT, 'bench', 'plain-deploy.sh'),
          [envFile, appCopy(), `plain${i}`],
          { stdio: 'ignore' }
        )
      })
      plain.push(p)
    }

    // 3. fleet: 3 hosts with max-parallel 3 vs one host
    console.log('fleet: 3 hosts (max-parallel 3) vs 1 host ...')
    const fleetInputs = (extra: Record<string, string>) => ({
      ...inputsFor(f1, extra),
      host: [f1, f2, f3].map(h => `deploy@${h.ip}`).join('\n'),
      'known-hosts': execFileSync('cat', [f1.knownHosts, f2.knownHosts, f3.knownHosts], {
        encoding: 'utf8'
      })
    })
    // The three hosts share this machine's cores, so booting their workers at once is slower
    // than one host whatever the deploy tool does: the plain script on the same hosts, one and
    // three at once, is the baseline that shows this contention.
    const plainOn = (host: KitHost, id: string) =>
      execFileAsync(path.join(ROOT, 'bench', 'plain-deploy.sh'), [
        path.join('/var/lib/zdd-hostkit/hosts', host.name, 'host.env'),
        appCopy(),
        id
      ])
    const oneHost: number[] = []
    const threeHosts: number[] = []
    const plainOneHost: number[] = []
    const plainThreeHosts: number[] = []
    for (let i = 0; i < 3; i++) {
      oneHost.push((await timed(() => deploy(single)))[0])
      const [t, run] = await timed(() =>
        runAction(
          fleetInputs({ source: appCopy(), 'release-id': `fleet${i}`, 'max-parallel': '3' })
        )
      )
      if (run.outputs.status !== 'deployed')
        throw new Error(`fleet deploy failed: ${run.stdout.slice(-2000)}`)
      threeHosts.push(t)
      plainOneHost.push((await timed(() => plainOn(single, `plainone${i}`)))[0])
      plainThreeHosts.push(
        (await timed(() => Promise.all([f1, f2, f3].map(h => plainOn(h, `plainfleet${i}`)))))[0]
      )
    }

    const results = {
      command,
      startedAt,
      machine: `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, Node ${process.version}`,
      loadAverage5min: { start: +loadAtStart.toFixed(2), end: +loadavg()[1].toFixed(2) },
      loadDuringDeploys: { ...duringDeploys, deploys: deploysDuring, evidence: deployEvidence },
      loadDuringRollbacks: {
        ...duringRollbacks,
        rollbacks: rollbacksDuring,
        evidence: rollbackEvidence
      },
      deployWallTime: {
        actionSeconds: ours,
        plainScriptSeconds: plain,
        medianRatio: +(median(ours) / median(plain)).toFixed(2)
      },
      hupToVerifiedSeconds: hupToVerified,
      sshConnectionsPerHostPerDeploy: connections,
      fleet: {
        oneHostSeconds: oneHost,
        threeHostsMaxParallel3Seconds: threeHosts,
        medianRatio: +(median(threeHosts) / median(oneHost)).toFixed(2),
        plainOneHostSeconds: plainOneHost,
        plainThreeHostsAtOnceSeconds: plainThreeHosts,
        plainMedianRatio: +(median(plainThreeHosts) / median(plainOneHost)).toFixed(2)
      }
    }
    const f = (xs: number[]) => xs.map(x => x.toFixed(2)).join(', ')
    const md = `# Benchmark results

Produced by \`${command}\` (bench/bench.ts) on ${startedAt}, ${results.machine}, against
hostkit test hosts (systemd-nspawn containers on this machine). Ratios are measured in the same run.
The machine's 5-minute load average was ${results.loadAverage5min.start} at the start and
${results.loadAverage5min.end} at the end (other work shares its cores).

| measure | result | goal |
|---|---|---|
| failed requests during deploys | **${duringDeploys.failed} of ${duringDeploys.sent}** at ${duringDeploys.rate} req/s through Nginx, ${deploysDuring} deploys in ${duringDeploys.seconds.toFixed(0)} s | 0 of ≥ 10,000 at ≥ 200 req/s |
| failed requests during rollbacks | **${duringRollbacks.failed} of ${duringRollbacks.sent}** at ${duringRollbacks.rate} req/s through Nginx, ${rollbacksDuring} rollbacks in ${duringRollbacks.seconds.toFixed(0)} s | 0 of ≥ 10,000 at ≥ 200 req/s |
| deploy wall time, action / plain ssh script (median) | **${results.deployWallTime.medianRatio}** (action: ${f(ours)} s; script: ${f(plain)} s) | ≤ 0.7 |
| HUP to verified new release | **median ${median(hupToVerified).toFixed(2)} s, slowest ${Math.max(...hupToVerified).toFixed(2)} s** (${f(hupToVerified)} s) | median ≤ 1.0 s, slowest ≤ 1.3 s |
| SSH connections per host per deploy | ${connections.join(', ')} | 1 |
| one deploy, step by step (the third timed deploy; lock and upload run beside preflight, the import check beside the migrations, prune beside switch, reload and verify) | ${timeline} | |
| 3 hosts (max-parallel 3) / 1 host (median) | **${results.fleet.medianRatio}** (3 hosts: ${f(threeHosts)} s; 1 host: ${f(oneHost)} s) | close to the plain script's ratio below |
| plain script, 3 hosts at once / 1 host (median): the cost of 3 hosts sharing this machine's cores | ${results.fleet.plainMedianRatio} (3 hosts: ${f(plainThreeHosts)} s; 1 host: ${f(plainOneHost)} s) | |

The plain script is \`bench/plain-deploy.sh\`: one \`ssh\` per step (upload, pip, import check,
migration, switch, reload, wait for health), none of the action's checks (preflight, lock,
environment validation, \`flask db current\` = \`heads\`, worker and release verification through
Gunicorn and Nginx, traffic probe, release log, pruning).
${[
  ['during deploys', duringDeploys, deployEvidence] as const,
  ['during rollbacks', duringRollbacks, rollbackEvidence] as const
]
  .filter(([, r]) => r.failed > 0)
  .map(
    ([when, r, ev]) =>
      `\n## Failed requests ${when}\n\nFirst ones: ${r.failures.join('; ')}\n\n\`\`\`\n${ev}\n\`\`\`\n`
  )
  .join('')}`
    writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n')
    writeFileSync(path.join(ROOT, 'bench', 'results.md'), md)
    console.log(md)
  } finally {
    await Promise.all(names.map(hostDown))
  }
}

await main()
