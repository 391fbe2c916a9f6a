// What an open load's records say (see open-load.ts): answer-time percentiles and
// failures within windows of the load's clock, and how long a failed release kept
// visitors from the old one. Pure functions of the records.
import type { HoldUp, RequestRecord } from './open-load.js'

/** A stretch of the load's clock, in ms; a request belongs to it by the time it was sent. */
export interface Span {
  from: number
  to: number
}

/** Nearest rank: the least value with at least p % of the values at or below it (NaN if none). */
export function percentile(sortedAscending: readonly number[], p: number): number {
  if (sortedAscending.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sortedAscending.length)
  return sortedAscending[Math.min(sortedAscending.length, Math.max(1, rank)) - 1]
}

export function inSpans(t: number, spans: readonly Span[]): boolean {
  return spans.some(s => t >= s.from && t < s.to)
}

export interface WindowStats {
  sent: number
  failed: number
  /** failures by reason, the most frequent first */
  reasons: [string, number][]
  /** time to the full answer (or the failure) of every request sent in the window, ms */
  p50: number
  p99: number
  max: number
  /** requests that took over 1 s */
  overOneSecond: number
  /** how long the load's own process was held up within the window, ms (its answer times include it) */
  heldUpMs: number
}

/** Failures and answer times of the requests sent within `spans`. */
export function windowStats(
  requests: readonly RequestRecord[],
  spans: readonly Span[],
  holdUps: readonly HoldUp[] = []
): WindowStats {
  const within = requests.filter(r => inSpans(r.sentAt, spans))
  const times = within.map(r => r.ms).sort((a, b) => a - b)
  const reasons = new Map<string, number>()
  for (const r of within)
    if (r.failure !== undefined) reasons.set(r.failure, (reasons.get(r.failure) ?? 0) + 1)
  return {
    sent: within.length,
    failed: within.filter(r => r.failure !== undefined).length,
    reasons: [...reasons.entries()].sort((a, b) => b[1] - a[1]),
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    max: times.length ? times[times.length - 1] : NaN,
    overOneSecond: times.filter(ms => ms > 1000).length,
    heldUpMs: holdUps.filter(h => inSpans(h.at, spans)).reduce((n, h) => n + h.ms, 0)
  }
}

/** What visitors saw of a release that failed after the traffic switch, on the load's clock (ms). */
export interface Restore {
  /** requests answered after the switch that failed */
  failed: number
  /** requests answered after the switch with a 2xx from a release other than the old one */
  foreign: number
  /** the answer time of the first failed or foreign answer after the switch (undefined: none) */
  firstBadAt?: number
  /**
   * The answer time of the old release's first answer to a request sent after the last
   * failed or foreign one: from then on every visitor is served by the old release again.
   * Undefined when there was no bad answer, or when the old release never answered again.
   */
  restoredAt?: number
}

const answeredAt = (r: RequestRecord) => r.sentAt + r.ms
const least = (xs: number[]) => xs.reduce((a, b) => Math.min(a, b), Infinity)

/** How long the old release (`oldRelease`) was not what served, after the switch at `switchAt`. */
export function restoreOf(
  requests: readonly RequestRecord[],
  switchAt: number,
  oldRelease: string
): Restore {
  const after = requests.filter(r => answeredAt(r) >= switchAt)
  const bad = (r: RequestRecord) => r.failure !== undefined || r.release !== oldRelease
  const badOnes = after.filter(bad)
  const restore: Restore = {
    failed: after.filter(r => r.failure !== undefined).length,
    foreign: after.filter(r => r.failure === undefined && r.release !== oldRelease).length
  }
  if (badOnes.length === 0) return restore
  restore.firstBadAt = least(badOnes.map(answeredAt))
  const lastBadSent = -least(badOnes.map(r => -r.sentAt))
  const back = after.filter(r => r.sentAt > lastBadSent && !bad(r))
  if (back.length) restore.restoredAt = least(back.map(answeredAt))
  return restore
}
