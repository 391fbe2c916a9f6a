// Who may read a release: the deploy user and the service's group, not every user of
// the host; what Nginx serves from it stays readable by all. The unpacking runs with
// this machine's sh and tar on a real archive.
import { afterAll, describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import type { Readable } from 'node:stream'
import { execFileSync } from 'node:child_process'
import { createArchive } from '../../src/modes/release-archive.js'
import { placeRelease, ReleaseLayout, uploadRelease } from '../../src/host/release-layout.js'
import {
  openToNginx,
  releaseAccess,
  servedByNginx,
  type AccessFacts
} from '../../src/host/release-permissions.js'
import type { ShellLine } from '../../src/transport/shell-quote.js'
import type { ExecOptions, ExecResult, RemoteHost } from '../../src/transport/ssh-connection.js'
import type { UpstreamVerdict } from '../../src/host/nginx/nginx-config.js'

const dir = mkdtempSync(path.join(tmpdir(), 'zdd-perms-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs commands with this machine's sh, stdin piped, as a server would (umask 022). */
const local: RemoteHost = {
  target: { user: 'deploy', host: 'local', port: 22, label: 'deploy@local:22' },
  exec: (command: ShellLine, options?: ExecOptions) =>
    new Promise<ExecResult>(resolve => {
      const child = spawn('sh', ['-c', `umask 022; ${command}`])
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', c => (stdout += c))
      child.stderr.on('data', c => (stderr += c))
      const stdin = options?.stdin
      if (stdin === undefined) child.stdin.end()
      else if (typeof stdin === 'string') child.stdin.end(stdin)
      else (stdin as Readable).pipe(child.stdin)
      child.on('close', code => resolve({ code, signal: null, stdout, stderr, timedOut: false }))
    }),
  openChannel: () => Promise.reject(new Error('none')),
  isConnected: () => true,
  close: () => Promise.resolve()
}

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8)
const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim()

async function uploaded(name: string, access?: Parameters<typeof uploadRelease>[3]) {
  const source = path.join(dir, `${name}-src`)
  mkdirSync(path.join(source, 'static', 'css'), { recursive: true })
  mkdirSync(path.join(source, 'pkg'), { recursive: true })
  writeFileSync(path.join(source, 'wsgi.py'), 'app = None\n')
  writeFileSync(path.join(source, 'pkg', 'settings.py'), 'TOKEN = "x"\n')
  writeFileSync(path.join(source, 'static', 'css', 'app.css'), 'body {}\n')
  const archive = path.join(dir, `${name}.tar.gz`)
  await createArchive(source, { id: name, sha: '', actor: '', run: '', time: '' }, archive)
  const layout = new ReleaseLayout(path.join(dir, name))
  mkdirSync(layout.releasesDir, { recursive: true })
  // the run's own incoming directory is unpacked, then placed as releases/<id> (as a deploy does)
  const incoming = layout.incoming(name, 'test')
  await uploadRelease(local, incoming, createReadStream(archive), access)
  await placeRelease(local, layout, incoming, name)
  return layout.release(name)
}

describe('release permissions', () => {
  // Issue 18: every release was made world-readable.
  it("unpacks a release readable by the service's group only", async () => {
    const release = await uploaded('r1', { mode: 'group', group })
    for (const file of ['wsgi.py', 'pkg/settings.py', '.zdd-release.json'])
      expect([file, mode(path.join(release, file))]).toEqual([file, '640'])
    expect(mode(path.join(release, 'pkg'))).toMatch(/^2?750$/) // setgid: new files get the group
    expect(mode(release)).toMatch(/^2?750$/)
    expect(statSync(path.join(release, 'pkg', 'settings.py')).gid).toBe(process.getgid!())
  })

  it('keeps a release readable by everyone when the service could not read it otherwise', async () => {
    const release = await uploaded('r2', { mode: 'world', why: 'x', fix: 'y' })
    expect(mode(path.join(release, 'wsgi.py'))).toBe('644')
  })

  it('opens what Nginx serves from the release, and the directories above it, to every user', async () => {
    const release = await uploaded('r3', { mode: 'group', group })
    expect(await openToNginx(local, release, ['static/css', 'missing'])).toEqual([
      'static/css',
      'missing'
    ])
    expect(mode(path.join(release, 'static', 'css', 'app.css'))).toBe('644')
    expect(mode(path.join(release, 'static', 'css'))).toMatch(/^2?755$/)
    expect(mode(path.join(release, 'static'))).toMatch(/^2?751$/)
    expect(mode(release)).toMatch(/^2?751$/)
    expect(mode(path.join(release, 'wsgi.py'))).toBe('640')
    const all = await uploaded('r4', { mode: 'group', group })
    await openToNginx(local, all, undefined) // the Nginx configuration could not be read
    expect(mode(path.join(all, 'wsgi.py'))).toBe('644')
  })
})

describe('releaseAccess', () => {
  const facts = (over: Partial<AccessFacts>): AccessFacts => ({
    unitUser: 'www-data',
    unitGroup: '',
    userGroup: 'www-data',
    deployUser: 'deploy',
    deployGroup: 'deploy',
    deployGroups: ['deploy', 'www-data'],
    ...over
  })

  it("gives a release to the service's group when the deploy user is in it", () => {
    expect(releaseAccess(facts({}))).toEqual({ mode: 'group', group: 'www-data' })
    expect(releaseAccess(facts({ unitGroup: 'web', deployGroups: ['deploy', 'web'] }))).toEqual({
      mode: 'group',
      group: 'web'
    })
  })

  it("keeps it to the deploy user's own group when the service runs as the deploy user", () => {
    expect(releaseAccess(facts({ unitUser: 'deploy', userGroup: 'deploy' }))).toEqual({
      mode: 'group',
      group: 'deploy'
    })
  })

  // Found by adopt.test.ts (tutorial-root): a root master running `gunicorn --user shop --group
  // www-data` got a release only the deploy user's group could read, and its workers could not
  // import it.
  it('leaves it readable by everyone when the service runs as root without a Group= the deploy user is in', () => {
    for (const unitUser of ['', 'root'])
      expect(releaseAccess(facts({ unitUser, userGroup: 'root' }))).toMatchObject({
        mode: 'world',
        fix: 'run the service as its own user (User=, Group=) and add deploy to that group'
      })
    expect(releaseAccess(facts({ unitUser: '', unitGroup: 'www-data' }))).toEqual({
      mode: 'group',
      group: 'www-data'
    })
  })

  it('leaves it readable by everyone, saying why and how to change it, when the deploy user is not in the group', () => {
    const access = releaseAccess(facts({ deployGroups: ['deploy'] }))
    expect(access).toMatchObject({
      mode: 'world',
      fix: 'usermod -aG www-data deploy (then release files are readable by www-data only)'
    })
  })
})

describe('servedByNginx', () => {
  const location = (
    files: { kind: 'alias' | 'root'; path: string } | undefined,
    proxies = false
  ) => ({
    modifier: '' as const,
    path: '/static/',
    files,
    proxies,
    file: 'site',
    line: 1
  })
  const verdict = (...locations: ReturnType<typeof location>[]) =>
    ({
      kind: 'match',
      servers: [{ locations }],
      proxies: [],
      keepalive: []
    }) as unknown as UpstreamVerdict

  it('lists the directories of the release Nginx serves files from', () => {
    expect(
      servedByNginx(
        verdict(
          location({ kind: 'alias', path: '/srv/myapp/current/static/' }),
          location({ kind: 'root', path: '/srv/myapp/current/public/$host/' }),
          location({ kind: 'root', path: '/var/www/html' }),
          location({ kind: 'root', path: '/srv/myapp/current' }, true)
        ),
        '/srv/myapp/current'
      )
    ).toEqual(['public', 'static'])
    expect(
      servedByNginx(
        verdict(location({ kind: 'root', path: '/srv/myapp/current/' })),
        '/srv/myapp/current'
      )
    ).toEqual([''])
    expect(servedByNginx({ kind: 'unknown', reason: 'x' }, '/srv/myapp/current')).toBeUndefined()
  })
})
