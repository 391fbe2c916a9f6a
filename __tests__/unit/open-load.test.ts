// The open load against a small HTTP server on 127.0.0.1 (nothing leaves this machine).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { startOpenLoad } from '../../__tests__/integration/open-load.js'

let server: http.Server
let port: number
/** requests waiting on /stall, answered by `release()` */
const stalled: http.ServerResponse[] = []

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/stall') return void stalled.push(res)
    if (req.url === '/fail') return void res.writeHead(503).end('no')
    if (req.url === '/json') {
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end('{"release":"from-body"}')
    }
    res.writeHead(200, { 'x-release': 'r1' }).end('{"release":"not-this"}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  for (const res of stalled) res.destroy()
  await new Promise(resolve => server.close(resolve))
})

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

describe('startOpenLoad', () => {
  it('sends at the rate, stops at maxRequests and records status, time and release', async () => {
    const load = startOpenLoad({
      host: '127.0.0.1',
      port,
      rate: 200,
      maxRequests: 60,
      maxSeconds: 10
    })
    await sleep(600)
    const report = await load.stop()
    expect(report.requests).toHaveLength(60)
    expect(report.requests.every(r => r.status === 200 && r.failure === undefined)).toBe(true)
    expect(new Set(report.requests.map(r => r.release))).toEqual(new Set(['r1']))
    // 60 requests 5 ms apart: the last one sent about 295 ms after the first
    const last = report.requests[59].sentAt
    expect(last).toBeGreaterThanOrEqual(280)
    expect(last).toBeLessThan(500)
  })

  it('reads the release from a JSON body without the header; counts a 503 as failed', async () => {
    const json = startOpenLoad({
      host: '127.0.0.1',
      port,
      path: '/json',
      rate: 100,
      maxRequests: 3,
      maxSeconds: 5
    })
    const fail = startOpenLoad({
      host: '127.0.0.1',
      port,
      path: '/fail',
      rate: 100,
      maxRequests: 3,
      maxSeconds: 5
    })
    const [j, f] = await Promise.all([json.stop({ atLeast: 3 }), fail.stop({ atLeast: 3 })])
    expect(j.requests.map(r => r.release)).toEqual(['from-body', 'from-body', 'from-body'])
    expect(f.requests.map(r => [r.status, r.failure])).toEqual(Array(3).fill([503, 'HTTP 503']))
  })

  it('keeps sending while the server stalls, and fails what is not answered in time', async () => {
    const load = startOpenLoad({
      host: '127.0.0.1',
      port,
      path: '/stall',
      rate: 100,
      maxRequests: 1000,
      maxSeconds: 10,
      timeoutSeconds: 0.5
    })
    await sleep(400)
    const report = await load.stop()
    // open: about 40 sent in 400 ms although none was answered (a closed load sends a few)
    expect(report.requests.length).toBeGreaterThanOrEqual(30)
    expect(report.mostInFlight).toBeGreaterThanOrEqual(30)
    expect(report.requests.every(r => r.failure === 'timeout' && r.status === 0)).toBe(true)
    expect(Math.min(...report.requests.map(r => r.ms))).toBeGreaterThanOrEqual(490)
  })

  it('counts a refused connection as failed with its reason', async () => {
    const closed = http.createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const closedPort = (closed.address() as AddressInfo).port
    await new Promise(resolve => closed.close(resolve))
    const load = startOpenLoad({
      host: '127.0.0.1',
      port: closedPort,
      rate: 100,
      maxRequests: 2,
      maxSeconds: 5
    })
    const report = await load.stop({ atLeast: 2 })
    expect(report.requests.map(r => r.failure)).toEqual(['ECONNREFUSED', 'ECONNREFUSED'])
  })

  it('does not send the requests it missed while held up in one burst, and says how long', async () => {
    const load = startOpenLoad({
      host: '127.0.0.1',
      port,
      rate: 200,
      maxRequests: 10_000,
      maxSeconds: 10
    })
    await sleep(200)
    const heldFrom = load.clock()
    const until = Date.now() + 400
    while (Date.now() < until); // this process is held up for 400 ms
    await sleep(300)
    const report = await load.stop()
    const holdUp = report.holdUps.find(h => h.at >= heldFrom - 10)
    expect(holdUp?.ms).toBeGreaterThanOrEqual(380)
    expect(holdUp?.skipped).toBeGreaterThanOrEqual(70)
    // after the hold-up the schedule goes on at 200/s: at most a few requests in its first 50 ms
    const resumed = holdUp!.at + holdUp!.ms
    const burst = report.requests.filter(r => r.sentAt >= resumed && r.sentAt < resumed + 50)
    expect(burst.length).toBeLessThanOrEqual(12)
    expect(report.eventLoopMaxMs).toBeGreaterThanOrEqual(380)
  })

  it('stops by itself at maxSeconds', async () => {
    const load = startOpenLoad({
      host: '127.0.0.1',
      port,
      rate: 100,
      maxRequests: 10_000,
      maxSeconds: 0.3
    })
    await sleep(600)
    const t0 = Date.now()
    const report = await load.stop()
    expect(Date.now() - t0).toBeLessThan(200)
    expect(report.requests.length).toBeGreaterThanOrEqual(20)
    expect(report.requests.length).toBeLessThanOrEqual(32)
  })
})
