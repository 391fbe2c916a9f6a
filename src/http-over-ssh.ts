// The one module that owns HTTP. Requests are made with undici from the
// runner, over a channel the SSH server opens on its own side: so
// `http://127.0.0.1/health` means the server's loopback, and unix sockets
// (`http://unix:/run/myapp/myapp.sock:/health`) work without curl on the host.
import { Client } from 'undici'
import type { HttpTarget } from './http-target.js'
import type { ChannelTarget, RemoteHost } from './ssh-connection.js'

export interface HttpResponse {
  status: number
  headers: Record<string, string>
  body: string
  ms: number
}

const MAX_BODY = 64 * 1024

function channelFor(target: HttpTarget): ChannelTarget {
  return target.kind === 'unix'
    ? { kind: 'unix', socket: target.socket }
    : { kind: 'tcp', host: target.host, port: target.port }
}

/** One GET through the SSH connection; rejects on connection errors and timeouts. */
export async function httpGet(
  remote: RemoteHost,
  target: HttpTarget,
  timeoutMs = 5000
): Promise<HttpResponse> {
  const started = Date.now()
  const origin =
    target.kind === 'unix'
      ? 'http://localhost'
      : `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  const client = new Client(origin, {
    connect: (_options, callback) => {
      remote.openChannel(channelFor(target)).then(
        stream => callback(null, stream as never),
        error => callback(error as Error, null)
      )
    },
    // undici's own parser timers can fire after the client is destroyed (a
    // crash with channel sockets); the one timer below bounds the request instead.
    headersTimeout: 0,
    bodyTimeout: 0,
    pipelining: 0
  })
  const timer = setTimeout(
    () => client.destroy(new Error(`no answer within ${timeoutMs} ms`)).catch(() => undefined),
    timeoutMs
  )
  try {
    const response = await client.request({
      method: 'GET',
      path: target.path,
      headers: { 'user-agent': 'flask-zero-downtime-deploy', connection: 'close' },
      reset: true
    })
    let body = ''
    for await (const chunk of response.body) {
      if (body.length < MAX_BODY) body += (chunk as Buffer).toString('utf8')
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(response.headers)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value ?? '')
    }
    return {
      status: response.statusCode,
      headers,
      body: body.slice(0, MAX_BODY),
      ms: Date.now() - started
    }
  } finally {
    clearTimeout(timer)
    await client.destroy().catch(() => undefined)
  }
}
