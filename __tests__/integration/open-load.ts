// An open load, as independent visitors make it: GET requests at a fixed arrival rate,
// a new connection each, sent on schedule whatever the server does (a stalled server
// gets more requests waiting, not fewer sent). Every request is recorded: when it was
// sent, its status or failure, its time to the full answer and the release that answered.
// Bounded in count and time. Shared by the benchmarks (bench/) and usable by tests.
import * as http from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'

export interface OpenLoadOptions {
  /** the address requested: a test host's IP, or 127.0.0.1 */
  host: string
  /** default 80 */
  port?: number
  /** default /health */
  path?: string
  /** requests per second */
  rate: number
  /** the load stops by itself after this many requests ... */
  maxRequests: number
  /** ... or after this many seconds, whichever comes first */
  maxSeconds: number
  /** a request with no full answer by then fails with `timeout` (default 15 s) */
  timeoutSeconds?: number
  /** how late the schedule may be before the requests missed are dropped (default 50 ms) */
  behindMs?: number
}

/** One request; times are ms on the load's clock (0 = its start). */
export interface RequestRecord {
  sentAt: number
  /** from sending to the full answer (or the failure) */
  ms: number
  /** 0 when no answer came (connection error, timeout, not sent) */
  status: number
  /** the X-Release header, else the JSON body's `release` */
  release?: string
  /** why it failed (`HTTP 502`, `ECONNRESET`, `timeout`, ...); undefined when it got a 2xx */
  failure?: string
}

/**
 * The load's own process was held up (a busy machine): its schedule was `ms` late at `at`.
 * The `skipped` requests it missed meanwhile were not sent: independent visitors do not
 * arrive in one burst, so the schedule starts again from then. Answers in flight meanwhile
 * are read late by up to `ms`.
 */
export interface HoldUp {
  at: number
  ms: number
  skipped: number
}

export interface OpenLoadReport {
  /** epoch ms of the load's clock 0 */
  startedAt: number
  seconds: number
  /** requests per second over the whole load */
  rate: number
  /** every request, in the order sent */
  requests: RequestRecord[]
  holdUps: HoldUp[]
  /** the most requests waiting for their answers at once */
  mostInFlight: number
  /** the longest this process's event loop was late, in ms */
  eventLoopMaxMs: number
}

export interface OpenLoad {
  /** ms since the load's start */
  clock(): number
  /**
   * Stops sending and reports once every request sent has ended. `atLeast`: keep sending
   * until that many were sent (still within maxRequests and maxSeconds).
   */
  stop(opts?: { atLeast?: number }): Promise<OpenLoadReport>
}

/** The release an answer names: its X-Release header, else its JSON body's `release`. */
export function releaseOf(headers: http.IncomingHttpHeaders, body: string): string | undefined {
  const header = headers['x-release']
  if (typeof header === 'string' && header) return header
  try {
    const json: unknown = JSON.parse(body)
    if (json && typeof json === 'object' && 'release' in json) return String(json.release)
  } catch {
    // not JSON
  }
  return undefined
}

const MAX_BODY = 16 * 1024

/** One GET; resolves (never rejects) with its record. */
function request(
  agent: http.Agent,
  opts: OpenLoadOptions,
  timeoutMs: number,
  sentAt: number
): Promise<RequestRecord> {
  const t0 = performance.now()
  return new Promise(resolve => {
    let ended = false
    // (end runs from the request's events, always after `timer` below is set)
    const end = (status: number, failure?: string, release?: string) => {
      if (ended) return
      ended = true
      clearTimeout(timer)
      resolve({ sentAt, ms: Math.round(performance.now() - t0), status, release, failure })
    }
    const req = http.get(
      { host: opts.host, port: opts.port ?? 80, path: opts.path ?? '/health', agent },
      res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          if (body.length < MAX_BODY) body += chunk
        })
        res.on('end', () => {
          const status = res.statusCode ?? 0
          const ok = status >= 200 && status < 300
          end(status, ok ? undefined : `HTTP ${status}`, releaseOf(res.headers, body))
        })
        // an answer cut off: its status, but failed
        res.on('error', error => end(res.statusCode ?? 0, errorName(error)))
      }
    )
    // the whole request, connection to full answer, not just an idle socket
    const timer = setTimeout(() => {
      end(0, 'timeout')
      req.destroy()
    }, timeoutMs)
    req.on('error', error => end(0, errorName(error)))
  })
}

/** `ECONNRESET`, `timeout`, ...: short enough to count failures by reason. */
function errorName(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.message
}

/** Starts the load; it runs until `stop()` or its own bounds. */
export function startOpenLoad(opts: OpenLoadOptions): OpenLoad {
  const timeoutMs = (opts.timeoutSeconds ?? 15) * 1000
  const behindMs = opts.behindMs ?? 50
  const interval = 1000 / opts.rate
  // Enough sockets for every request that can be waiting: at most timeout x rate of them.
  const agent = new http.Agent({
    keepAlive: false,
    maxSockets: Math.ceil((opts.rate * timeoutMs) / 1000) + 100
  })
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  const started = performance.now()
  const startedAt = Date.now()
  const clock = () => performance.now() - started
  const requests: RequestRecord[] = []
  const holdUps: HoldUp[] = []
  const pending: Promise<void>[] = []
  let inFlight = 0
  let mostInFlight = 0
  let stopping = false
  let atLeast = 0

  const send = () => {
    const index = requests.length
    const sentAt = Math.round(clock())
    requests.push({ sentAt, ms: 0, status: 0, failure: 'no answer yet' })
    inFlight++
    mostInFlight = Math.max(mostInFlight, inFlight)
    pending.push(
      request(agent, opts, timeoutMs, sentAt).then(record => {
        requests[index] = record
        inFlight--
      })
    )
  }

  const driver = (async () => {
    let due = 0
    const more = () =>
      requests.length < opts.maxRequests &&
      clock() < opts.maxSeconds * 1000 &&
      (!stopping || requests.length < atLeast)
    while (more()) {
      const wait = due - clock()
      if (wait > 0) await new Promise(r => setTimeout(r, wait))
      const behind = clock() - due
      if (behind > behindMs) {
        holdUps.push({
          at: Math.round(due),
          ms: Math.round(behind),
          skipped: Math.floor(behind / interval)
        })
        due = clock()
      }
      due += interval
      if (more()) send()
    }
  })()

  return {
    clock,
    async stop(stopOpts = {}) {
      atLeast = stopOpts.atLeast ?? 0
      stopping = true
      await driver
      await Promise.all(pending)
      agent.destroy()
      lag.disable()
      const seconds = clock() / 1000
      return {
        startedAt,
        seconds,
        rate: Math.round(requests.length / seconds),
        requests,
        holdUps,
        mostInFlight,
        eventLoopMaxMs: Math.round(lag.max / 1e6)
      }
    }
  }
}
