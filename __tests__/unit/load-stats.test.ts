import { describe, expect, it } from '@jest/globals'
import { percentile, restoreOf, windowStats } from '../../__tests__/integration/load-stats.js'
import type { RequestRecord } from '../../__tests__/integration/open-load.js'

const ok = (sentAt: number, ms = 2, release = 'a'): RequestRecord => ({
  sentAt,
  ms,
  status: 200,
  release
})
const bad = (sentAt: number, ms = 2, failure = 'HTTP 502'): RequestRecord => ({
  sentAt,
  ms,
  status: 502,
  failure
})

describe('percentile', () => {
  const oneTo100 = Array.from({ length: 100 }, (_, i) => i + 1)

  it('is the nearest rank: p50 of 1..100 is 50, p99 is 99, p100 is 100', () => {
    expect(percentile(oneTo100, 50)).toBe(50)
    expect(percentile(oneTo100, 99)).toBe(99)
    expect(percentile(oneTo100, 100)).toBe(100)
    expect(percentile(oneTo100, 0)).toBe(1)
  })

  it('sees the slowest 2 % in p99 and not the slowest 0.5 %', () => {
    const twoPercent = [...Array.from({ length: 980 }, () => 3), ...Array(20).fill(4000)]
    expect(percentile(twoPercent, 99)).toBe(4000)
    const halfPercent = [...Array.from({ length: 995 }, () => 3), ...Array(5).fill(4000)]
    expect(percentile(halfPercent, 99)).toBe(3)
  })

  it('is NaN without values and the value itself for one', () => {
    expect(percentile([], 99)).toBeNaN()
    expect(percentile([7], 50)).toBe(7)
  })
})

describe('windowStats', () => {
  const requests = [
    ok(0, 1),
    ok(999, 2),
    ok(1000, 3),
    bad(1500, 40, 'ECONNRESET'),
    bad(1600, 50),
    bad(1700, 60),
    ok(1999, 1200),
    ok(2000, 5)
  ]

  it('takes the requests sent within the spans (from included, to excluded)', () => {
    const s = windowStats(requests, [{ from: 1000, to: 2000 }])
    expect(s.sent).toBe(5)
    expect(s.failed).toBe(3)
    expect(s.reasons).toEqual([
      ['HTTP 502', 2],
      ['ECONNRESET', 1]
    ])
    expect([s.p50, s.max, s.overOneSecond]).toEqual([50, 1200, 1])
  })

  it('joins several spans and counts the hold-ups of the load within them', () => {
    const s = windowStats(
      requests,
      [
        { from: 0, to: 1000 },
        { from: 2000, to: 3000 }
      ],
      [
        { at: 500, ms: 80, skipped: 20 },
        { at: 1500, ms: 300, skipped: 75 },
        { at: 2100, ms: 60, skipped: 15 }
      ]
    )
    expect([s.sent, s.failed, s.max, s.heldUpMs]).toEqual([3, 0, 5, 140])
  })

  it('has no percentiles for an empty window', () => {
    const s = windowStats(requests, [{ from: 5000, to: 6000 }])
    expect([s.sent, s.failed]).toEqual([0, 0])
    expect(s.p99).toBeNaN()
  })
})

describe('restoreOf', () => {
  // old release a until the switch at 1000; 502 from 1000; a again for requests sent from 3000
  const timeline = [
    ...Array.from({ length: 10 }, (_, i) => ok(i * 100)),
    ...Array.from({ length: 20 }, (_, i) => bad(1000 + i * 100)),
    ...Array.from({ length: 10 }, (_, i) => ok(3000 + i * 100, 4))
  ]

  it('runs from the first bad answer after the switch to the old release answering again', () => {
    const r = restoreOf(timeline, 1000, 'a')
    expect(r).toEqual({ failed: 20, foreign: 0, firstBadAt: 1002, restoredAt: 3004 })
  })

  it('is not put off by a late failure of a request sent during the outage', () => {
    // sent at 2950, timed out 15 s later: the old release served from 3000 on all the same
    const r = restoreOf([...timeline, bad(2950, 15_000, 'timeout')], 1000, 'a')
    expect(r.restoredAt).toBe(3004)
    expect(r.failed).toBe(21)
  })

  it('counts answers of another release as foreign, and a request in flight at the switch', () => {
    const r = restoreOf(
      [ok(900, 150), ok(1200, 3, 'b'), bad(1300), ok(1400, 2), ok(1500, 2)],
      1000,
      'a'
    )
    expect(r).toEqual({ failed: 1, foreign: 1, firstBadAt: 1203, restoredAt: 1402 })
  })

  it('has no outage when every answer after the switch came from the old release', () => {
    expect(restoreOf([ok(0), ok(1000), ok(2000)], 500, 'a')).toEqual({ failed: 0, foreign: 0 })
  })

  it('has no restore time when the old release never answered again', () => {
    const r = restoreOf([ok(0), bad(1000), bad(2000)], 500, 'a')
    expect(r.firstBadAt).toBe(1002)
    expect(r.restoredAt).toBeUndefined()
  })
})
