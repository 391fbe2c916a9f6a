import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { runLocally, ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'
import { analyzeNginx, matchUpstream, type NginxConfig } from '../../src/host/nginx/nginx-config.js'
import { parseBind } from '../../src/host/gunicorn/bind.js'
import { confPathFromVersion, readNginxConfig } from '../../src/host/nginx/nginx-read.js'

/** matchUpstream with Gunicorn's binds as written. */
const matchBinds = (config: NginxConfig, binds: string[]) =>
  matchUpstream(config, binds.map(parseBind))

const DUMP = `# configuration file /etc/nginx/nginx.conf:
http { include /etc/nginx/sites-enabled/*; }

# configuration file /etc/nginx/sites-enabled/myapp:
upstream myapp { server unix:/run/myapp/myapp.sock fail_timeout=0; }
server { location / { proxy_pass http://myapp; } }

`

/** The helper runs for real, on files under a temporary directory. */
const helperForReal: Rule = { when: / readglobs /, reply: runLocally }

describe('readNginxConfig through sudo -n nginx -T', () => {
  it('reads every file in one command', async () => {
    const remote = new ScriptedRemote([{ when: /^sudo -n nginx -T$/, reply: { stdout: DUMP } }])
    const read = await readNginxConfig(remote, { sudoDump: true })
    expect(remote.commands).toEqual(['sudo -n nginx -T'])
    expect(read).toMatchObject({ via: 'nginx -T', complete: true, problems: [], exhaustive: true })
    expect(read.mainPath).toBe('/etc/nginx/nginx.conf')
    expect([...read.files.keys()]).toEqual([
      '/etc/nginx/nginx.conf',
      '/etc/nginx/sites-enabled/myapp'
    ])
    expect(matchBinds(analyzeNginx(read), ['unix:/run/myapp/myapp.sock']).kind).toBe('match')
  })

  it('falls back to the files, saying why, when sudo refuses', async () => {
    const remote = new ScriptedRemote(
      [
        {
          when: /^sudo -n nginx -T$/,
          reply: { code: 1, stderr: 'sudo: a password is required\n' }
        }
      ],
      { readGlobs: { '/etc/nginx/nginx.conf': [] } }
    )
    const read = await readNginxConfig(remote, {
      sudoDump: true,
      confPath: '/etc/nginx/nginx.conf'
    })
    expect(read.via).toBe('files')
    expect(read.problems[0]).toBe(
      'sudo -n nginx -T exit 1: sudo: a password is required; reading the files instead'
    )
    expect(read.complete).toBe(false)
  })
})

describe('readNginxConfig as the deploy user', () => {
  let root: string
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), text)
  }

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nginx-read-'))
    write(
      'nginx.conf',
      'events {}\nhttp {\n include conf.d/*.conf;\n include sites-enabled/*;\n}\n'
    )
    write('conf.d/upstream.conf', 'include snippets/upstream-servers;\n')
    write('conf.d/notes.txt', 'not a configuration file {')
    write('snippets/upstream-servers', 'upstream app { server 127.0.0.1:8000; keepalive 4; }\n')
    write('sites-available/app', 'server { listen 80; location / { proxy_pass http://app; } }\n')
    mkdirSync(join(root, 'sites-enabled'))
    symlinkSync(join(root, 'sites-available/app'), join(root, 'sites-enabled/app'))
  })
  afterAll(() => rmSync(root, { recursive: true, force: true }))

  it('reads includes level by level, one round trip per level', async () => {
    const remote = new ScriptedRemote([helperForReal])
    const read = await readNginxConfig(remote, {
      sudoDump: false,
      confPath: join(root, 'nginx.conf')
    })
    expect(read.problems).toEqual([])
    expect(read).toMatchObject({ via: 'files', complete: true })
    expect(remote.commands).toHaveLength(3)
    expect(read.globs.get(join(root, 'conf.d/*.conf'))).toEqual([
      join(root, 'conf.d/upstream.conf')
    ])
    expect([...read.files.keys()].sort()).toEqual(
      ['conf.d/upstream.conf', 'nginx.conf', 'sites-enabled/app', 'snippets/upstream-servers'].map(
        p => join(root, p)
      )
    )
    const config = analyzeNginx(read)
    expect(config.upstreams.get('app')?.keepalive).toBe(4)
    expect(matchBinds(config, ['localhost:8000']).kind).toBe('match')
    expect(matchBinds(config, ['localhost:8001']).kind).toBe('mismatch')
  })

  it('reports a file it cannot read and is then incomplete', async () => {
    symlinkSync(join(root, 'sites-available/gone'), join(root, 'sites-enabled/gone'))
    try {
      const read = await readNginxConfig(new ScriptedRemote([helperForReal]), {
        sudoDump: false,
        confPath: join(root, 'nginx.conf')
      })
      expect(read.complete).toBe(false)
      expect(read.unreadable.get(join(root, 'sites-enabled/gone'))).toBe(
        'No such file or directory'
      )
      expect(read.problems).toEqual([
        `could not read ${join(root, 'sites-enabled/gone')}: No such file or directory`
      ])
      expect(matchBinds(analyzeNginx(read), ['localhost:8001']).kind).toBe('unknown')
    } finally {
      rmSync(join(root, 'sites-enabled/gone'))
    }
  })

  it('takes the main file from nginx -V when no path is given', async () => {
    const remote = new ScriptedRemote([
      {
        when: / nginx -V$/,
        reply: {
          stderr: `nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx --conf-path=${root}/nginx.conf --http-log-path=/var/log/nginx/access.log\n`
        }
      },
      helperForReal
    ])
    const read = await readNginxConfig(remote, { sudoDump: false })
    expect(read.mainPath).toBe(join(root, 'nginx.conf'))
    expect(read.complete).toBe(true)
    expect(remote.commands[0]).toMatch(/^env PATH=\S+:\/usr\/sbin:\S+ nginx -V$/)
  })

  it('reports a helper that did not run', async () => {
    const remote = new ScriptedRemote([
      { when: / readglobs /, reply: { code: 127, stderr: 'sh: 1: python3: not found' } }
    ])
    const read = await readNginxConfig(remote, {
      sudoDump: false,
      confPath: '/etc/nginx/nginx.conf'
    })
    expect(read.complete).toBe(false)
    expect(read.problems[0]).toBe(
      "reading /etc/nginx/nginx.conf failed: the remote helper's readglobs on deploy@server.test:22 failed: exit status 127 with no answer:\nsh: 1: python3: not found"
    )
  })
})

describe('confPathFromVersion', () => {
  it.each([
    ['configure arguments: --conf-path=/etc/nginx/nginx.conf', '/etc/nginx/nginx.conf'],
    [
      'configure arguments: --prefix=/opt/nginx/ --conf-path=conf/nginx.conf',
      '/opt/nginx/conf/nginx.conf'
    ],
    ['configure arguments: --prefix=/usr/share/nginx', undefined]
  ])('%s -> %s', (output, expected) => {
    expect(confPathFromVersion(output)).toBe(expected)
  })
})
