// Bounded HTTP load for integration tests: a few loops of GET requests from this
// machine to one kit host's Nginx (its HOST_IP, port 80, nowhere else), started
// before an action run and stopped after it. Every loop stops by itself at its
// request count or at the time cap, whichever comes first.
import * as http from 'node:http'
import type { KitHost } from './kit.js'

export interface LoadOptions {
  /** concurrent request loops (default 8) */
  loops?: number
  /** requests per second over all loops together (default 250) */
  rate?: number
  /** requests over all loops together before they stop by themselves (default 30000) */
  maxRequests?: number
  /** seconds before they stop by themselves (default 150) */
  maxSeconds?: number
  /** the path requested (default /health) */
  path?: string
}

export interface LoadReport {
  /** requests that completed (answered or failed) */
  total: number
  /** non-2xx answers and transport errors (refused, reset, timeout) */
  failed: number
  /** of those, requests that got no answer within the client's 10 s */
  timeouts: number
  /** the first few failures, each with its time since the start */
  failures: string[]
  /** the releases that answered (X-Release header, else the JSON body's `release`), by first answer */
  releases: string[]
  /** failures of requests sent after the first 2xx answer arrived (for hosts that serve nothing at first) */
  failedAfterFirstOk: number
  seconds: number
  /** total / seconds */
  rate: number
}

/** How a request that got no answer in time is reported. */
const TIMEOUT = 'timeout'

export interface Load {
  /**
   * Stops the loops and reports. `atLeast`: keep going until that many requests completed
   * (still bounded by the time cap), so a quick action still runs under a few hundred requests.
   */
  stop(opts?: { atLeast?: number }): Promise<LoadReport>
}

const SAMPLES = 5

function releaseOf(res: http.IncomingMessage, body: string): string | undefined {
  const header = res.headers['x-release']
  if (typeof header === 'string' && header) return header
  try {
    const json: unknown = JSON.parse(body)
    if (json && typeof json === 'object' && 'release' in json) return String(json.release)
  } catch {
    // not JSON
  }
  return undefined
}

/** Starts the loops against `host`'s Nginx; they run until `stop()` or their own bounds. */
export function startLoad(host: KitHost, opts: LoadOptions = {}): Load {
  const loops = opts.loops ?? 8
  const rate = opts.rate ?? 250
  const maxRequests = opts.maxRequests ?? 30_000
  const maxSeconds = opts.maxSeconds ?? 150
  const urlPath = opts.path ?? '/health'
  const perLoop = Math.ceil(maxRequests / loops)
  const interval = (1000 * loops) / rate // each loop's pace
  // a new connection per request, as independent clients do (no keep-alive races)
  const agent = new http.Agent({ keepAlive: false, maxSockets: loops * 2 })
  const started = Date.now()
  const deadline = started + maxSeconds * 1000
  const firstSeen = new Map<string, number>()
  const report: LoadReport = {
    total: 0,
    failed: 0,
    timeouts: 0,
    failures: [],
    releases: [],
    failedAfterFirstOk: 0,
    seconds: 0,
    rate: 0
  }
  let firstOkAt = 0
  let stopping = false
  let atLeast = 0

  const failed = (sentAt: number, what: string) => {
    report.failed++
    if (what === TIMEOUT) report.timeouts++
    if (firstOkAt && sentAt > firstOkAt) report.failedAfterFirstOk++
    if (report.failures.length < SAMPLES)
      report.failures.push(`+${((Date.now() - started) / 1000).toFixed(2)} s ${what}`)
  }

  const request = () =>
    new Promise<void>(resolve => {
      const sentAt = Date.now()
      const req = http.get(
        { host: host.ip, port: 80, path: urlPath, agent, timeout: 10_000 },
        res => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => (body += chunk))
          res.on('end', () => {
            report.total++
            const status = res.statusCode ?? 0
            if (status >= 200 && status < 300) {
              if (!firstOkAt) firstOkAt = Date.now()
              const release = releaseOf(res, body)
              if (release && !firstSeen.has(release)) firstSeen.set(release, Date.now())
            } else {
              failed(sentAt, `HTTP ${status}`)
            }
            resolve()
          })
          res.on('error', error => {
            report.total++
            failed(sentAt, error.message)
            resolve()
          })
        }
      )
      req.on('timeout', () => req.destroy(new Error(TIMEOUT)))
      req.on('error', error => {
        report.total++
        failed(sentAt, error.message)
        resolve()
      })
    })

  const loop = async (index: number) => {
    // spread the loops over one interval so the requests do not arrive in bursts
    let due = started + (interval * index) / loops
    for (let sent = 0; sent < perLoop; sent++) {
      if (Date.now() >= deadline) return
      if (stopping && report.total >= atLeast) return
      const wait = due - Date.now()
      if (wait > 0) await new Promise(r => setTimeout(r, wait))
      due += interval
      await request()
    }
  }
  const running = Promise.all(Array.from({ length: loops }, (_, i) => loop(i)))

  return {
    async stop(stopOpts = {}) {
      atLeast = stopOpts.atLeast ?? 0
      stopping = true
      await running
      agent.destroy()
      report.seconds = (Date.now() - started) / 1000
      report.rate = Math.round(report.total / report.seconds)
      report.releases = [...firstSeen.entries()].sort((a, b) => a[1] - b[1]).map(([id]) => id)
      return report
    }
  }
}

/** Runs `action` under load on `host` and returns both; see startLoad for the bounds. */
export async function underLoad<T>(
  host: KitHost,
  action: () => Promise<T>,
  opts: LoadOptions & { atLeast?: number } = {}
): Promise<[T, LoadReport]> {
  const load = startLoad(host, opts)
  // the loops are stopped also when the action throws, so none outlives the test
  const outcome = await action().then(
    value => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error })
  )
  const report = await load.stop({ atLeast: opts.atLeast })
  if (!outcome.ok) throw outcome.error
  return [outcome.value, report]
}
