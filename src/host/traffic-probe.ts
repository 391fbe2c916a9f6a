// Requests a URL continuously (through the SSH connection) while the switch,
// reload and verification run, and counts the requests that fail.
import { httpGet } from '../transport/http-over-ssh.js'
import type { HttpTarget } from '../transport/http-target.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

export interface ProbeResult {
  requests: number
  failed: number
  /** The first few failures, e.g. `502`, `connection reset`. */
  samples: string[]
  /** Release ids seen in X-Release headers, in order of first appearance. */
  releases: string[]
}

export interface TrafficProbe {
  stop(): Promise<ProbeResult>
}

export function startProbe(
  remote: RemoteHost,
  url: HttpTarget,
  opts: { concurrency?: number; maxRequests?: number; maxSeconds?: number; timeoutMs?: number } = {}
): TrafficProbe {
  const result: ProbeResult = { requests: 0, failed: 0, samples: [], releases: [] }
  const maxRequests = opts.maxRequests ?? 100_000
  const deadline = Date.now() + (opts.maxSeconds ?? 600) * 1000
  let stopped = false
  const fail = (what: string) => {
    result.failed++
    if (result.samples.length < 10) result.samples.push(what)
  }
  const loop = async () => {
    while (!stopped && result.requests < maxRequests && Date.now() < deadline) {
      result.requests++
      try {
        const response = await httpGet(remote, url, opts.timeoutMs ?? 5000)
        const release = response.headers['x-release']
        if (release && !result.releases.includes(release)) result.releases.push(release)
        if (response.status < 200 || response.status > 299) fail(`HTTP ${response.status}`)
      } catch (error) {
        fail((error as Error).message.slice(0, 120))
      }
    }
  }
  const loops = Array.from({ length: opts.concurrency ?? 2 }, loop)
  return {
    async stop() {
      stopped = true
      await Promise.all(loops)
      return result
    }
  }
}
