// A local HTTP server that stands in for the GitHub REST API: it records every
// request and answers the deployment endpoints the way GitHub does, or as a
// test scripts it (an error status, an echoed token, no answer at all).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface RecordedRequest {
  method: string
  path: string
  authorization: string
  body: Record<string, unknown>
}

/** How the fake answers one request; `undefined` means GitHub's normal answer. */
export type Answer = { status: number; body: unknown } | 'hang' | undefined

export interface FakeGitHubApi {
  url: string
  requests: RecordedRequest[]
  /** Decides the answer to each request (default: GitHub's normal answer). */
  answer: (request: RecordedRequest) => Answer
  close(): Promise<void>
}

export async function startFakeGitHubApi(): Promise<FakeGitHubApi> {
  let nextId = 41
  const hanging: ServerResponse[] = []
  const api: FakeGitHubApi = {
    url: '',
    requests: [],
    answer: () => undefined,
    close: async () => {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: String(req.headers.authorization ?? ''),
        body: text ? (JSON.parse(text) as Record<string, unknown>) : {}
      }
      api.requests.push(recorded)
      const scripted = api.answer(recorded)
      if (scripted === 'hang') {
        hanging.push(res)
        return
      }
      const { status, body } = scripted ?? normalAnswer(recorded)
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify(body))
    })
  })

  function normalAnswer(r: RecordedRequest): { status: number; body: unknown } {
    if (r.method === 'POST' && /^\/repos\/[^/]+\/[^/]+\/deployments$/.test(r.path)) {
      nextId += 1
      return { status: 201, body: { id: nextId, ref: r.body.ref, environment: r.body.environment } }
    }
    const status = /^\/repos\/[^/]+\/[^/]+\/deployments\/(\d+)\/statuses$/.exec(r.path)
    if (r.method === 'POST' && status)
      return { status: 201, body: { id: 900 + nextId, state: r.body.state } }
    return { status: 404, body: { message: 'Not Found' } }
  }

  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return api
}

/** A local port with nothing listening on it (connection refused). */
export async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}
