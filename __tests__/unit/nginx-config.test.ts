import { describe, expect, it } from '@jest/globals'
import { parseBind } from '../../src/host/gunicorn/bind.js'
import { reaches } from '../../src/host/endpoint.js'
import {
  analyzeNginx,
  deriveNginxUrl,
  matchUpstream,
  splitNginxDump,
  staticLocationFor,
  type NginxConfig,
  type NginxSources
} from '../../src/host/nginx/nginx-config.js'
import { globMatches, parseFile, resolveIncludes } from '../../src/host/nginx/nginx-syntax.js'

/** matchUpstream with Gunicorn's binds as written. */
const matchBinds = (config: NginxConfig, binds: string[]) =>
  matchUpstream(config, binds.map(parseBind))

const MAIN = '/etc/nginx/nginx.conf'

/** Debian's nginx.conf, shortened: the http block includes conf.d and sites-enabled. */
const DEBIAN_MAIN = `user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
}

http {
\tsendfile on;
\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;
\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}
`

/** Every file given, so globs are matched against these paths (as with `nginx -T`). */
function config(files: Record<string, string>, extra: Partial<NginxSources> = {}): NginxConfig {
  return analyzeNginx({
    mainPath: MAIN,
    files: new Map(Object.entries({ [MAIN]: DEBIAN_MAIN, '/etc/nginx/mime.types': '', ...files })),
    exhaustive: true,
    ...extra
  })
}

function site(body: string): NginxConfig {
  return config({ '/etc/nginx/sites-enabled/myapp': body })
}

describe('Nginx syntax', () => {
  it('keeps ; { and # inside quotes, and drops comments that contain them', () => {
    const { directives, error } = parseFile(
      '/x.conf',
      [
        '# a comment; with { braces',
        `add_header X-Note "a;b {c} # d" always; # trailing; {`,
        `return 200 'it\\'s "fine"';`,
        'set $x ${host}a#b;',
        'log_format main "line\\tnext";'
      ].join('\n')
    )
    expect(error).toBeUndefined()
    expect(directives.map(d => [d.name, ...d.args])).toEqual([
      ['add_header', 'X-Note', 'a;b {c} # d', 'always'],
      ['return', '200', `it's "fine"`],
      ['set', '$x', '${host}a#b'],
      ['log_format', 'main', 'line\tnext']
    ])
    expect(directives.map(d => d.line)).toEqual([2, 3, 4, 5])
  })

  it('reports the file and line of a syntax error', () => {
    const unclosed = parseFile('/etc/nginx/sites-enabled/a', 'server {\n  listen 80;\n')
    expect(unclosed.error).toEqual({
      file: '/etc/nginx/sites-enabled/a',
      line: 3,
      message: 'unexpected end of file, expecting "}"'
    })
    const stray = parseFile('/b', 'events {}\n}\n')
    expect(stray.error).toMatchObject({ line: 2, message: 'unexpected "}"' })
    const glued = parseFile('/c', 'return 200 "a"b;')
    expect(glued.error).toMatchObject({ line: 1, message: 'unexpected "b"' })
    expect(parseFile('/d', 'listen 80').error?.message).toMatch(/expecting ";"/)
  })

  it('matches include globs as glob(3) does', () => {
    expect(globMatches('/etc/nginx/conf.d/*.conf', '/etc/nginx/conf.d/app.conf')).toBe(true)
    expect(globMatches('/etc/nginx/conf.d/*.conf', '/etc/nginx/conf.d/app.conf.bak')).toBe(false)
    expect(globMatches('/etc/nginx/conf.d/*.conf', '/etc/nginx/conf.d/sub/app.conf')).toBe(false)
    expect(globMatches('/etc/nginx/sites-enabled/*', '/etc/nginx/sites-enabled/.swp')).toBe(false)
    expect(globMatches('/etc/nginx/site[0-9]?', '/etc/nginx/site7a')).toBe(true)
  })
})

describe('include resolution', () => {
  it('expands relative and absolute globs in order, against the main file directory', () => {
    const tree = resolveIncludes({
      mainPath: '/opt/nginx/conf/nginx.conf',
      files: new Map([
        ['/opt/nginx/conf/nginx.conf', 'http { include sites/*; include /opt/extra/*.conf; }'],
        ['/opt/nginx/conf/sites/b', 'server { listen 81; }'],
        ['/opt/nginx/conf/sites/a', 'server { listen 80; include snippets/common; }'],
        ['/opt/nginx/conf/snippets/common', 'server_name a.test;'],
        ['/opt/extra/z.conf', 'upstream z { server 127.0.0.1:9; }'],
        ['/opt/extra/z.txt', 'this is not included']
      ]),
      exhaustive: true
    })
    expect(tree.errors).toEqual([])
    expect(tree.unresolvedIncludes).toEqual([])
    const http = tree.directives[0].block ?? []
    expect(http.map(d => `${d.name} ${d.args.join(' ')} @${d.file}`)).toEqual([
      'server  @/opt/nginx/conf/sites/a',
      'server  @/opt/nginx/conf/sites/b',
      'upstream z @/opt/extra/z.conf'
    ])
    expect(http[0].block?.map(d => d.name)).toEqual(['listen', 'server_name'])
  })

  it('names the patterns it still needs when the files are not all known', () => {
    const tree = resolveIncludes({
      mainPath: MAIN,
      files: new Map([[MAIN, DEBIAN_MAIN]]),
      globs: new Map([['/etc/nginx/conf.d/*.conf', []]])
    })
    expect(tree.unresolvedIncludes).toEqual([
      '/etc/nginx/modules-enabled/*.conf',
      '/etc/nginx/mime.types',
      '/etc/nginx/sites-enabled/*'
    ])
  })

  it('reports files that exist but could not be read', () => {
    const tree = resolveIncludes({
      mainPath: MAIN,
      files: new Map([[MAIN, 'http { include sites-enabled/*; }']]),
      globs: new Map([['/etc/nginx/sites-enabled/*', ['/etc/nginx/sites-enabled/x']]]),
      unreadable: new Map([['/etc/nginx/sites-enabled/x', 'Permission denied']])
    })
    expect(tree.unreadable).toEqual(['/etc/nginx/sites-enabled/x: Permission denied'])
  })
})

describe('nginx -T output', () => {
  it('splits into the files Nginx read, the first being the main one', () => {
    const output = [
      '# configuration file /etc/nginx/nginx.conf:',
      'http {',
      '    include /etc/nginx/sites-enabled/*;',
      '}',
      '',
      '# configuration file /etc/nginx/sites-enabled/myapp:',
      'server { # no newline at the end',
      '  location / { proxy_pass http://unix:/run/myapp/myapp.sock; } }',
      ''
    ].join('\n')
    const { mainPath, files } = splitNginxDump(output)
    expect(mainPath).toBe('/etc/nginx/nginx.conf')
    expect([...files.keys()]).toEqual(['/etc/nginx/nginx.conf', '/etc/nginx/sites-enabled/myapp'])
    expect(files.get('/etc/nginx/nginx.conf')).toBe(
      'http {\n    include /etc/nginx/sites-enabled/*;\n}\n'
    )
    expect(files.get('/etc/nginx/sites-enabled/myapp')).toMatch(/sock; } }$/)
    const parsed = analyzeNginx({ mainPath: mainPath ?? '', files, exhaustive: true })
    expect(matchBinds(parsed, ['unix:/run/myapp/myapp.sock']).kind).toBe('match')
  })
})

describe('upstreams', () => {
  it('resolves a one-line named upstream with parameters', () => {
    const c = site(`upstream myapp { server unix:/run/myapp/myapp.sock fail_timeout=0; }
server {
    listen 80;
    server_name app.example.com;
    location / { proxy_pass http://myapp; }
}`)
    expect(c.upstreams.get('myapp')?.servers).toEqual([
      { endpoint: { kind: 'unix', path: '/run/myapp/myapp.sock' }, params: { fail_timeout: '0' } }
    ])
    const verdict = matchBinds(c, ['unix:/run/myapp/myapp.sock'])
    expect(verdict.kind).toBe('match')
    if (verdict.kind === 'match') expect(verdict.servers[0].names).toEqual(['app.example.com'])
  })

  it('resolves a multi-line upstream with weights, backup and keepalive', () => {
    const c = site(`upstream app_servers {
    least_conn;
    server 10.0.0.7:8000 weight=3 max_fails=2 fail_timeout=10s;
    server 127.0.0.1:8000 backup;
    keepalive 16;
}
server {
    location /api/ {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app_servers/v1/;
    }
}`)
    const upstream = c.upstreams.get('app_servers')
    expect(upstream?.keepalive).toBe(16)
    expect(upstream?.servers.map(s => s.params)).toEqual([
      { weight: '3', max_fails: '2', fail_timeout: '10s' },
      { backup: true }
    ])
    const proxy = c.servers[0].proxies[0]
    expect(proxy).toMatchObject({ upstream: 'app_servers', location: '/api/', scheme: 'http' })
    expect(matchBinds(c, ['localhost:8000']).kind).toBe('match')
    expect(matchBinds(c, ['10.0.0.7:8000']).kind).toBe('match')
  })

  it('refuses nothing it cannot resolve: an upstream given a port is not a match', () => {
    const c = site(
      'upstream app { server 127.0.0.1:8000; }\nserver { location / { proxy_pass http://app:8000; } }'
    )
    expect(c.servers[0].proxies[0].unresolved).toMatch(/may not have a port/)
    expect(matchBinds(c, ['127.0.0.1:8001']).kind).toBe('unknown')
  })
})

describe('endpoint equivalence', () => {
  const proxyTo = (target: string) =>
    site(`server { listen 80; location / { proxy_pass ${target}; } }`)

  it.each([
    ['http://localhost:8000', '127.0.0.1:8000'],
    ['http://127.0.0.1:8000', 'localhost:8000'],
    ['http://[::1]:8000/', '127.0.0.1:8000'],
    ['http://127.0.0.1:8000', '[::1]:8000'],
    ['http://localhost:8000', '0.0.0.0:8000'],
    ['http://127.0.0.1:8000', '[::]:8000'],
    ['http://127.0.0.1:8000', ':8000'],
    ['http://127.0.0.1:8000', 'tcp://127.0.0.1:8000'],
    ['http://10.0.0.5:8000', '10.0.0.5:8000'],
    ['http://unix:/run/myapp/myapp.sock:/', 'unix:/run/myapp/myapp.sock'],
    ['http://unix:/var/run/myapp.sock', 'unix:/run/myapp.sock'],
    ['http://127.0.0.1:8000$request_uri', '127.0.0.1:8000']
  ])('proxy_pass %s reaches a Gunicorn bound to %s', (target, bind) => {
    expect(matchBinds(proxyTo(target), [bind]).kind).toBe('match')
  })

  it('takes Gunicorn default bind (127.0.0.1:8000) when no bind is given', () => {
    expect(matchBinds(proxyTo('http://localhost:8000'), []).kind).toBe('match')
    expect(matchBinds(proxyTo('http://localhost:9000'), [])).toEqual({
      kind: 'mismatch',
      proxiedTo: ['localhost:9000'],
      binds: ['127.0.0.1:8000']
    })
  })

  it.each([
    ['http://127.0.0.1:8001', '127.0.0.1:8000'],
    ['http://127.0.0.1:8000', '10.0.0.5:8000'],
    ['http://10.0.0.6:8000', '10.0.0.5:8000'],
    ['http://unix:/run/other.sock', 'unix:/run/myapp/myapp.sock'],
    ['http://127.0.0.1:8000', 'unix:/run/myapp/myapp.sock']
  ])('proxy_pass %s is a definite mismatch with %s', (target, bind) => {
    const verdict = matchBinds(proxyTo(target), [bind])
    expect(verdict.kind).toBe('mismatch')
    if (verdict.kind === 'mismatch') expect(verdict.binds).toEqual([bind])
  })

  it('says maybe where DNS or the host addresses decide', () => {
    const tcp = (host: string, port: number) => ({ kind: 'tcp' as const, host, port })
    expect(reaches(tcp('10.0.0.5', 8000), tcp('0.0.0.0', 8000))).toBe('maybe')
    expect(reaches(tcp('app.internal', 8000), tcp('127.0.0.1', 8000))).toBe('maybe')
    expect(reaches(tcp('app.internal', 8001), tcp('127.0.0.1', 8000))).toBe('no')
    expect(matchBinds(proxyTo('http://app.internal:8000'), ['127.0.0.1:8000'])).toMatchObject({
      kind: 'unknown',
      reason: expect.stringMatching(/depends on DNS/)
    })
  })

  it('cannot compare a bind Gunicorn inherits (fd://) or refuses', () => {
    for (const bind of ['fd://3', 'localhost:http'])
      expect(matchBinds(proxyTo('http://127.0.0.1:8000'), [bind])).toEqual({
        kind: 'unknown',
        reason: `Gunicorn's bind ${bind} cannot be compared with proxy_pass`
      })
  })

  it('reads unix:// as Gunicorn does: both slashes go, so unix://run/a.sock is relative', () => {
    expect(matchBinds(proxyTo('http://unix:/run/a.sock'), ['unix:///run/a.sock']).kind).toBe(
      'match'
    )
    // relative to Gunicorn's directory, which may be /
    expect(matchBinds(proxyTo('http://unix:/run/a.sock'), ['unix://run/a.sock']).kind).toBe(
      'unknown'
    )
  })
})

describe('verdicts that stay unknown', () => {
  it('an include that was not read', () => {
    const c = analyzeNginx({
      mainPath: MAIN,
      files: new Map([[MAIN, 'http { include sites-enabled/*; }']])
    })
    expect(c.complete).toBe(false)
    expect(matchBinds(c, ['127.0.0.1:8000'])).toEqual({
      kind: 'unknown',
      reason: expect.stringContaining('include /etc/nginx/sites-enabled/* was not read')
    })
  })

  it('but a match found in what was read is still a match', () => {
    const c = analyzeNginx({
      mainPath: MAIN,
      files: new Map([
        [
          MAIN,
          'http { include conf.d/*.conf; server { location / { proxy_pass http://127.0.0.1:8000; } } }'
        ]
      ])
    })
    expect(c.complete).toBe(false)
    expect(matchBinds(c, ['127.0.0.1:8000']).kind).toBe('match')
  })

  it('a variable in proxy_pass', () => {
    const c = site(
      'server { set $backend 127.0.0.1:8000; location / { proxy_pass http://$backend; } }'
    )
    expect(c.servers[0].proxies[0].unresolved).toBe('variables in proxy_pass')
    expect(matchBinds(c, ['127.0.0.1:9000']).kind).toBe('unknown')
  })

  it('a syntax error', () => {
    const c = site('server { listen 80; location / { proxy_pass http://127.0.0.1:8001; }')
    expect(c.problems[0]).toMatch(/^\/etc\/nginx\/sites-enabled\/myapp:1: unexpected end of file/)
    expect(matchBinds(c, ['127.0.0.1:8000']).kind).toBe('unknown')
  })

  it('no proxy_pass at all', () => {
    const c = site('server { listen 80; root /var/www/html; }')
    expect(matchBinds(c, ['127.0.0.1:8000'])).toEqual({
      kind: 'unknown',
      reason: 'no proxy_pass in any http server block'
    })
  })
})

const VHOSTS = `server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;
    root /var/www/html;
}
server {
    listen 80;
    server_name shop.example.com www.shop.example.com;
    location / { proxy_pass http://127.0.0.1:8000; }
    location /static/ { alias /srv/myapp/current/static/; }
}`

describe('name-based virtual hosts', () => {
  it('returns only the server that proxies to Gunicorn', () => {
    const c = site(VHOSTS)
    expect(c.servers).toHaveLength(2)
    expect(c.servers[0].listens).toEqual([
      { port: 80, ssl: false, defaultServer: true, implicit: false },
      { port: 80, ssl: false, defaultServer: true, implicit: false }
    ])
    const verdict = matchBinds(c, ['127.0.0.1:8000'])
    if (verdict.kind !== 'match') throw new Error(`expected a match, got ${verdict.kind}`)
    expect(verdict.servers.map(s => s.names[0])).toEqual(['shop.example.com'])
    expect(deriveNginxUrl(verdict.servers[0], '/health').url).toBe('http://shop.example.com/health')
  })
})

const TLS = `server {
    listen 80;
    server_name app.example.com;
    return 301 https://$host$request_uri;
}
server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name app.example.com;
    ssl_certificate /etc/letsencrypt/live/app.example.com/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/app.example.com/privkey.pem;
    location / {
        proxy_pass http://unix:/run/myapp/myapp.sock;
    }
    location ^~ /assets/ { root /srv/myapp/current/public; expires 1y; }
}`

describe('TLS with an http -> https redirect', () => {
  it('links the plain server that redirects to the TLS server', () => {
    const c = site(TLS)
    const [plain, secure] = c.servers
    expect(plain.redirectsToHttps).toEqual({ status: 301, target: 'https://$host$request_uri' })
    expect(plain.tls).toBe(false)
    expect(secure.tls).toBe(true)
    expect(secure.certificates).toEqual(['/etc/letsencrypt/live/app.example.com/fullchain.pem'])
    expect(secure.redirectedFrom).toEqual(['/etc/nginx/sites-enabled/myapp:1'])
    const verdict = matchBinds(c, ['unix:/run/myapp/myapp.sock'])
    if (verdict.kind !== 'match') throw new Error(`expected a match, got ${verdict.kind}`)
    expect(verdict.servers).toEqual([secure])
    expect(deriveNginxUrl(secure, '/health')).toEqual({
      scheme: 'https',
      host: 'app.example.com',
      port: 443,
      path: '/health',
      url: 'https://app.example.com/health',
      connect: { kind: 'tcp', host: '127.0.0.1', port: 443 }
    })
  })

  it('honours the old `ssl on` and a certificate set for the whole http block', () => {
    const c = config({
      [MAIN]: `http {
    ssl_certificate /etc/ssl/site.pem;
    server { listen 8443; ssl on; server_name "";
        location / { proxy_pass http://127.0.0.1:8000; } }
}`
    })
    expect(c.servers[0].tls).toBe(true)
    expect(c.servers[0].certificates).toEqual(['/etc/ssl/site.pem'])
    expect(deriveNginxUrl(c.servers[0], 'health').url).toBe('https://127.0.0.1:8443/health')
  })
})

describe('deriveNginxUrl', () => {
  it('uses the listen port when it is not the default and the listen address to connect', () => {
    const c = site(`server {
    listen 10.0.0.5:8080;
    server_name *.example.com ~^www\\d+$ api.example.com;
    location / { proxy_pass http://127.0.0.1:8000; }
}`)
    expect(deriveNginxUrl(c.servers[0], '/health')).toMatchObject({
      url: 'http://api.example.com:8080/health',
      connect: { kind: 'tcp', host: '10.0.0.5', port: 8080 }
    })
  })

  it('falls back to 127.0.0.1 on port 80 for a catch-all server without listen', () => {
    const c = site('server { server_name _; location / { proxy_pass http://127.0.0.1:8000; } }')
    expect(c.servers[0].listens[0].implicit).toBe(true)
    expect(deriveNginxUrl(c.servers[0], '/health').url).toBe('http://127.0.0.1/health')
  })
})

describe('staticLocationFor', () => {
  it('finds an alias into the current release', () => {
    const c = site(VHOSTS)
    expect(staticLocationFor(c.servers, '/srv/myapp/current')).toMatchObject({
      urlPrefix: '/static/',
      dir: '/srv/myapp/current/static/',
      subdir: 'static/',
      exact: false
    })
  })

  it('appends the location path to a root, inherited from the server too', () => {
    expect(staticLocationFor(site(TLS).servers, '/srv/myapp/current/')).toMatchObject({
      urlPrefix: '/assets/',
      dir: '/srv/myapp/current/public/assets/',
      subdir: 'public/assets/'
    })
    const inherited = site(`server {
    root /srv/myapp/current/web;
    location = /robots.txt { }
    location / { proxy_pass http://127.0.0.1:8000; }
}`)
    expect(staticLocationFor(inherited.servers[0], '/srv/myapp/current')).toMatchObject({
      urlPrefix: '/robots.txt',
      dir: '/srv/myapp/current/web/robots.txt',
      exact: true
    })
  })

  it('ignores locations outside the release, proxied ones and regex ones', () => {
    const c = site(`server {
    location /static/ { alias /srv/other/current/static/; }
    location /app/ { root /srv/myapp/current; proxy_pass http://127.0.0.1:8000; }
    location ~ \\.css$ { root /srv/myapp/current/static; }
}`)
    expect(staticLocationFor(c.servers, '/srv/myapp/current')).toBeUndefined()
    expect(staticLocationFor(c.servers, '/srv/other/current')?.urlPrefix).toBe('/static/')
  })
})
