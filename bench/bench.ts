// Benchmarks (not tests): zero failed requests under load during deploys and
// rollbacks, deploy time against a plain ssh script, HUP-to-verified time,
// SSH connections per host, and a 3-host fleet against one host.
// Run with `npm run bench` (root); writes bench/results.md and bench/results.json.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import {
  appCopy,
  authorize,
  hostDown,
  hostUp,
  inputsFor,
  ROOT,
  runAction,
  type KitHost
} from '../__tests__/integration/kit.js'

interface LoadResult {
  sent: number
  failed: number
  seconds: number
  rate: number
  failures: string[]
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
  const result: LoadResult = { sent: 0, failed: 0, seconds: 0, rate: 0, failures: [] }
  const started = Date.now()
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
            if (res.statusCode !== 200) {
              result.failed++
              if (result.failures.length < 10) result.failures.push(`HTTP ${res.statusCode}`)
            }
            inFlight--
            resolve()
          })
        }
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', error => {
        result.failed++
        if (result.failures.length < 10) result.failures.push(error.message)
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

async function main(): Promise<void> {
  const command = 'npm run bench'
  const startedAt = new Date().toISOString()
  console.log('starting hosts ...')
  const [single, f1, f2, f3] = await Promise.all([
    hostUp('bn1', 'fixed'),
    hostUp('bn2', 'fixed'),
    hostUp('bn3', 'fixed'),
    hostUp('bn4', 'fixed')
  ])
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
    const duringDeploys = await load(single, rate, target, 90, async () => {
      const until = Date.now() + (target / rate) * 1000 - 3000
      while (Date.now() < until) {
        await deploy(single)
        deploysDuring++
      }
    })
    console.log(`load during rollbacks ...`)
    let rollbacksDuring = 0
    const ids = [`b${n - 1}`, `b${n}`]
    const duringRollbacks = await load(single, rate, target, 90, async () => {
      const until = Date.now() + (target / rate) * 1000 - 3000
      while (Date.now() < until) {
        const run = await runAction(
          inputsFor(single, { mode: 'rollback', 'rollback-to': ids[rollbacksDuring % 2] })
        )
        if (run.outputs.status !== 'rolled-back')
          throw new Error(`rollback failed: ${run.stdout.slice(-2000)}`)
        rollbacksDuring++
      }
    })

    // 2. deploy wall time: the action vs a plain ssh script doing the same steps, interleaved
    console.log('deploy wall time: action vs plain ssh script ...')
    const envFile = path.join('/var/lib/zdd-hostkit/hosts', single.name, 'host.env')
    const ours: number[] = []
    const plain: number[] = []
    const hupToVerified: number[] = []
    const connections: number[] = []
    for (let i = 0; i < 5; i++) {
      const [t, run] = await timed(() => deploy(single))
      ours.push(t)
      hupToVerified.push(stepMs(run.outputs.hosts, ['reload', 'verify']) / 1000)
      connections.push(JSON.parse(run.outputs.hosts)[0].connections)
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
    const oneHost: number[] = []
    const threeHosts: number[] = []
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
    }

    const results = {
      command,
      startedAt,
      machine: `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, Node ${process.version}`,
      loadDuringDeploys: { ...duringDeploys, deploys: deploysDuring },
      loadDuringRollbacks: { ...duringRollbacks, rollbacks: rollbacksDuring },
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
        medianRatio: +(median(threeHosts) / median(oneHost)).toFixed(2)
      }
    }
    const f = (xs: number[]) => xs.map(x => x.toFixed(2)).join(', ')
    const md = `# Benchmark results

Produced by \`${command}\` (bench/bench.ts) on ${startedAt}, ${results.machine}, against
hostkit test hosts (systemd-nspawn containers on this machine). Ratios are measured in the same run.

| measure | result | goal |
|---|---|---|
| failed requests during deploys | **${duringDeploys.failed} of ${duringDeploys.sent}** at ${duringDeploys.rate} req/s through Nginx, ${deploysDuring} deploys in ${duringDeploys.seconds.toFixed(0)} s | 0 of ≥ 10,000 at ≥ 200 req/s |
| failed requests during rollbacks | **${duringRollbacks.failed} of ${duringRollbacks.sent}** at ${duringRollbacks.rate} req/s through Nginx, ${rollbacksDuring} rollbacks in ${duringRollbacks.seconds.toFixed(0)} s | 0 of ≥ 10,000 at ≥ 200 req/s |
| deploy wall time, action / plain ssh script (median) | **${results.deployWallTime.medianRatio}** (action: ${f(ours)} s; script: ${f(plain)} s) | ≤ 1.2 |
| HUP to verified new release | ${f(hupToVerified)} s | |
| SSH connections per host per deploy | ${connections.join(', ')} | 1 |
| 3 hosts (max-parallel 3) / 1 host (median) | **${results.fleet.medianRatio}** (3 hosts: ${f(threeHosts)} s; 1 host: ${f(oneHost)} s) | ≤ 1.5 |

The plain script is \`bench/plain-deploy.sh\`: one \`ssh\` per step (upload, pip, import check,
migration, switch, reload, wait for health), none of the action's checks (preflight, lock,
environment validation, \`flask db current\` = \`heads\`, worker and release verification through
Gunicorn and Nginx, traffic probe, release log, pruning).
${duringDeploys.failures.length + duringRollbacks.failures.length > 0 ? `\nFailures seen: ${[...duringDeploys.failures, ...duringRollbacks.failures].join('; ')}\n` : ''}`
    writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n')
    writeFileSync(path.join(ROOT, 'bench', 'results.md'), md)
    console.log(md)
  } finally {
    await Promise.all(['bn1', 'bn2', 'bn3', 'bn4'].map(hostDown))
  }
}

await main()
