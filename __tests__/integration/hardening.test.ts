// Hardening against real hosts: host keys (also through a jump host), hostile
// input, secrets, and faults in the middle of a deploy. After every fault the
// host serves one consistent release and no lock or partial release is left.
import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, cpSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import {
  acceptedLogins,
  annotations,
  appCopy,
  appendTo,
  authorize,
  currentLink,
  inputsFor,
  prependTo,
  printedOutput,
  rootSh,
  runAction,
  servedRelease,
  type KitHost
} from './kit.js'
import { unexplainedFailures, unlessGunicornCrashed } from './problems.js'
import { withHost, withHostGroup } from './with-host.js'

/** What `current` points at and what Nginx serves must be the same release. */
async function consistentRelease(host: KitHost): Promise<string> {
  const current = (await currentLink(host)).replace('releases/', '')
  expect(await servedRelease(host)).toBe(current)
  expect((await rootSh(host, 'ls -A /srv/myapp')).split('\n')).not.toContain('.deploy-lock')
  expect(await rootSh(host, 'ls -A /srv/myapp/releases')).not.toContain('.incoming-')
  return current
}

describe('host keys', () => {
  const { hk1: target, hk2: bastion } = withHostGroup({ hk1: 'fixed', hk2: 'fixed' }, async () => {
    await authorize(target, bastion)
  })

  it('runs zero commands on a host whose key does not match', async () => {
    const logins = await acceptedLogins(target)
    const wrong = readFileSync(bastion.knownHosts, 'utf8').replace(bastion.ip, target.ip)
    const run = await runAction(
      inputsFor(target, { source: appCopy(), 'release-id': 'mitm', 'known-hosts': wrong })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain('does not match the pinned')
    expect(annotations(run)).not.toContain('retrying') // a wrong key is never retried
    expect(await acceptedLogins(target)).toBe(logins) // never even authenticated
    expect(await rootSh(target, 'ls -A /srv/myapp/releases; ls -A /srv/myapp')).not.toMatch(
      /mitm|deploy-lock/
    )
  })

  it('pins by SHA256 fingerprint as well', async () => {
    const fp = execFileSync('ssh-keygen', ['-lf', target.knownHosts], { encoding: 'utf8' }).split(
      ' '
    )[1]
    const good = await runAction(
      inputsFor(target, { mode: 'check', 'known-hosts': '', 'host-fingerprint': fp })
    )
    expect(good.outputs.status).toBe('checked')
    const bad = await runAction(
      inputsFor(target, {
        mode: 'check',
        'known-hosts': '',
        'host-fingerprint': 'SHA256:' + 'A'.repeat(43)
      })
    )
    expect(annotations(bad)).toContain('does not match the pinned')
  })

  it('deploys through a jump host, each key pinned, and refuses a jump host with a wrong key', async () => {
    const both = readFileSync(target.knownHosts, 'utf8') + readFileSync(bastion.knownHosts, 'utf8')
    const viaJump = {
      'private-key': readFileSync(bastion.key, 'utf8'),
      'jump-host': `deploy@${bastion.ip}`,
      'known-hosts': both
    }
    const run = await runAction(
      inputsFor(target, { ...viaJump, source: appCopy(), 'release-id': 'j1' })
    )
    expect(run.outputs.status).toBe('deployed')
    expect(run.stdout).toContain(`through deploy@${bastion.ip}:22`)
    expect(await servedRelease(target)).toBe('j1')
    const bastionOnlyTargetKey =
      readFileSync(target.knownHosts, 'utf8') +
      readFileSync(target.knownHosts, 'utf8').replace(target.ip, bastion.ip)
    const refused = await runAction(
      inputsFor(target, {
        ...viaJump,
        'known-hosts': bastionOnlyTargetKey,
        source: appCopy(),
        'release-id': 'j2'
      })
    )
    expect(refused.code).not.toBe(0)
    expect(annotations(refused)).toContain(`Host key of deploy@${bastion.ip}:22`)
    expect(await rootSh(target, 'ls /srv/myapp/releases')).not.toContain('j2')
  })
})

describe('hostile input and secrets', () => {
  const host = withHost('hs1', 'fixed')

  it('never runs an injected command, whatever the inputs carry', async () => {
    const payloads = [
      '$(touch /tmp/pwned-a)',
      '`touch /tmp/pwned-b`',
      ';touch /tmp/pwned-c;',
      "'; touch /tmp/pwned-d; '",
      '"$(touch /tmp/pwned-e)"',
      '\ntouch /tmp/pwned-f\n',
      '|| touch /tmp/pwned-g',
      '../../tmp/pwned-h',
      'ü $(touch /tmp/pwned-i)'
    ]
    // a validated input: refused by the real action before anything connects (all inputs: unit/hostile-input.test.ts)
    expect(await runActionQuick(host, { service: payloads[0] })).toContain("Input 'service'")
    // inputs passed on as data: the source directory name, migrate-command words, health-expect
    const weird = path.join(mkdtempSync(path.join(tmpdir(), 'zdd-')), "app '$(touch pwned-j)` ;x")
    cpSync(appCopy(), weird, { recursive: true })
    const run = await runAction(
      inputsFor(host, {
        source: weird,
        'release-id': 'hostile',
        // quoted, each payload is one literal word (unquoted, the input is refused: below)
        'migrate-command': payloads
          .filter(p => !p.includes('\n'))
          .map(p => `'${p.replace(/'/g, `'\\''`)}'`)
          .join(' '),
        'health-expect': payloads[0]
      })
    )
    expect(run.outputs.status).toBe('failed') // the "command" does not exist: stopped before the switch
    expect(await runActionQuick(host, { 'migrate-command': payloads.join(' ') })).toContain(
      "Input 'migrate-command'"
    )
    expect(
      await rootSh(
        host,
        'ls /tmp /srv/myapp /srv/myapp/releases /home/deploy; find / -xdev -name "pwned*" 2>/dev/null'
      )
    ).not.toContain('pwned')
    expect(await consistentRelease(host)).toBe('v0')
  })

  it('keeps the private key, its passphrase and EnvironmentFile values out of everything it prints and writes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zdd-key-'))
    const keyFile = path.join(dir, 'key')
    writeFileSync(keyFile, readFileSync(host.key), { mode: 0o600 })
    const passphrase = 'correct horse battery staple 42'
    execFileSync('ssh-keygen', ['-q', '-p', '-N', passphrase, '-f', keyFile])
    const key = readFileSync(keyFile, 'utf8')
    const envValues = (await rootSh(host, 'cut -d= -f2- /etc/myapp.env | grep -v "^#"'))
      .split('\n')
      .filter(v => v.length >= 8)
    expect(envValues.length).toBeGreaterThan(0)
    const runTmp = mkdtempSync(path.join(tmpdir(), 'zdd-runtmp-'))
    const sick = appCopy(d =>
      writeFileSync(
        path.join(d, 'wsgi.py'),
        readFileSync(path.join(d, 'wsgi.py'), 'utf8')
          .replace('status="ok",', 'status="ok", env=dict(os.environ),')
          .replace(
            'def health():',
            'def health():\n    return jsonify(env=dict(os.environ)), 500\n\ndef _unused():'
          )
      )
    )
    const runs = [
      await runAction(
        inputsFor(host, {
          'private-key': key,
          passphrase,
          source: appCopy(),
          'release-id': 's1',
          'required-env': 'SECRET_KEY'
        }),
        { env: { TMPDIR: runTmp } }
      ),
      await runAction(
        inputsFor(host, {
          'private-key': key,
          passphrase,
          source: sick,
          'release-id': 's2',
          'reload-timeout': '6'
        }),
        { env: { TMPDIR: runTmp } }
      ),
      await runAction(
        inputsFor(host, { 'private-key': key, passphrase: 'wrong passphrase 99', mode: 'check' }),
        { env: { TMPDIR: runTmp } }
      )
    ]
    expect(runs.map(r => r.outputs.status)).toEqual(['deployed', 'rolled-back', 'failed'])
    const secrets = [
      passphrase,
      'wrong passphrase 99',
      ...key.split('\n').filter(l => l.length > 20 && !l.startsWith('-----')),
      ...envValues
    ]
    for (const run of runs) {
      const printed = printedOutput(run)
      for (const text of [printed, run.stderr, run.summary, JSON.stringify(run.outputs)]) {
        for (const secret of secrets)
          expect(text.includes(secret) ? secret : 'absent').toBe('absent')
      }
    }
    expect(readdirSync(runTmp)).toEqual([]) // nothing (no key file, no archive) left on the runner
  })
})

/** Runs the action with one hostile input and returns its error text (it must fail before connecting). */
async function runActionQuick(host: KitHost, inputs: Record<string, string>): Promise<string> {
  const run = await runAction({
    ...inputsFor(host, { source: appCopy() }),
    ...inputs,
    'connect-retries': '0'
  })
  expect(run.stdout).not.toContain('connecting (host key')
  return annotations(run)
}

describe('faults in the middle of a deploy', () => {
  const host = withHost('ft1', 'fixed')

  it.each([
    ['upload', '== Upload release', 'Upload release'],
    ['dependencies', 'Dependencies', 'Dependencies'],
    ['migrations', 'Migrations', 'Migrations'],
    ['switch', 'switching current', 'switching current'],
    ['reload', 'reloading myapp', 'reloading myapp'],
    ['verification', 'Verify drop-verification serves', 'Verify drop-verification serves']
  ])('survives the SSH connection dropping during %s', async (step, _marker, marker) => {
    const before = await consistentRelease(host)
    let dropped = false
    const release = `drop-${step}`
    const source = appCopy(d =>
      writeFileSync(path.join(d, 'requirements.txt'), `# ${release}\nFlask>=2.2\n`)
    )
    const run = await runAction(inputsFor(host, { source, 'release-id': release }), {
      onLine: line => {
        if (!dropped && line.includes(marker)) {
          dropped = true
          execFileSync(path.join(process.cwd(), 'hostkit', 'host-exec.sh'), [
            host.name,
            'pkill',
            '-KILL',
            '-f',
            'sshd: deploy'
          ])
        }
      }
    })
    expect(dropped).toBe(true)
    expect(run.stdout).toContain('the SSH connection dropped; reconnecting to clean up')
    expect(run.outputs.status).not.toBe('deployed')
    const after = await consistentRelease(host)
    expect([before, release]).toContain(after)
    expect(after).toBe(before) // a drop before verification ends is rolled back
  })

  it('fails clearly after bounded connect retries with backoff', async () => {
    const started = Date.now()
    const run = await runAction(
      inputsFor(host, {
        host: `deploy@${host.ip}:2222`,
        'known-hosts': readFileSync(host.knownHosts, 'utf8').replace(host.ip, `[${host.ip}]:2222`),
        'connect-retries': '2',
        'connect-timeout': '2',
        source: appCopy()
      })
    )
    expect(run.code).not.toBe(0)
    expect(run.stdout).toContain('retrying in 1s (1/2)')
    expect(run.stdout).toContain('retrying in 2s (2/2)')
    expect(annotations(run)).toContain('could not connect')
    expect(annotations(run)).toContain('ECONNREFUSED')
    expect(Date.now() - started).toBeLessThan(60_000)
  })

  it('cleans up when the run is cancelled (SIGTERM) mid-deploy', async () => {
    const before = await consistentRelease(host)
    let sent = false
    const run = await runAction(inputsFor(host, { source: appCopy(), 'release-id': 'cancelled' }), {
      onLine: (line, pid) => {
        if (!sent && line.includes('Dependencies')) {
          sent = true
          process.kill(pid, 'SIGTERM')
        }
      }
    })
    expect(sent).toBe(true)
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain('cancelled (SIGTERM)')
    expect(await consistentRelease(host)).toBe(before)
    expect(await rootSh(host, 'ls /srv/myapp/releases')).not.toContain('cancelled')
  })

  it('fails before the switch when the disk fills during the upload, removing the partial release', async () => {
    const before = await consistentRelease(host)
    // releases/ on a 70 MiB tmpfs (existing releases copied in); the release unpacks to 100 MiB of zeros
    await rootSh(
      host,
      'cp -a /srv/myapp/releases /tmp/r && mount -t tmpfs -o size=70m,mode=755 tmpfs /srv/myapp/releases && cp -a /tmp/r/. /srv/myapp/releases/ && chown deploy:deploy /srv/myapp/releases'
    )
    try {
      const big = appCopy(d =>
        writeFileSync(path.join(d, 'zeros.bin'), Buffer.alloc(100 * 1024 * 1024))
      )
      const run = await runAction(inputsFor(host, { source: big, 'release-id': 'too-big' }))
      expect(run.outputs.status).toBe('failed')
      expect(annotations(run)).toMatch(/No space left on device/)
      expect(await rootSh(host, 'ls -A /srv/myapp/releases')).not.toMatch(/too-big/)
      expect(await consistentRelease(host)).toBe(before)
    } finally {
      await rootSh(host, 'umount /srv/myapp/releases; rm -rf /tmp/r')
    }
  })

  it('waits for an app that takes seconds to import, with no failed requests', async () => {
    const slow = appCopy(d => prependTo(path.join(d, 'wsgi.py'), 'import time\ntime.sleep(3)\n'))
    const run = await runAction(inputsFor(host, { source: slow, 'release-id': 'slow-boot' }))
    expect(run.outputs).toMatchObject({
      status: 'deployed',
      'failed-requests': unlessGunicornCrashed(run, '0')
    })
    // the import check timed the 3 s import: a reload holds requests about that long
    expect(annotations(run)).toMatch(/took [3-9]\.\d s to import: a reload \(HUP\) holds requests/)
    // what concurrency.test.ts's load check recognises in a busy machine's runs: only the
    // requests held past the client's timeout are left out, never a refused or failed one
    const load = { failed: 2, timeouts: 1, failures: ['+1.00 s timeout', '+2.00 s HTTP 502'] }
    expect(
      unexplainedFailures(
        { ...load, total: 9, releases: [], failedAfterFirstOk: 0, seconds: 1, rate: 9 },
        [run]
      )
    ).toEqual({
      failed: 1,
      failures: ['+2.00 s HTTP 502']
    })
    expect(await consistentRelease(host)).toBe('slow-boot')
  })

  it('lets requests in flight during the reload complete', async () => {
    const withSlow = () =>
      appCopy(d =>
        appendTo(
          path.join(d, 'wsgi.py'),
          '\n\n@app.route("/slow")\ndef slow():\n    import time\n    time.sleep(6)\n    return f"slow done by {RELEASE}\\n"\n'
        )
      )
    expect(
      (await runAction(inputsFor(host, { source: withSlow(), 'release-id': 'long-1' }))).outputs
        .status
    ).toBe('deployed')
    let inFlight: Promise<{ status: number; body: string }> | undefined
    const run = await runAction(inputsFor(host, { source: withSlow(), 'release-id': 'long-2' }), {
      onLine: line => {
        if (!inFlight && line.includes('switching current')) {
          inFlight = fetch(`http://${host.ip}/slow`, {
            signal: AbortSignal.timeout(30_000)
          }).then(async r => ({ status: r.status, body: await r.text() }))
        }
      }
    })
    expect(run.outputs.status).toBe('deployed')
    const answer = await inFlight!
    expect(answer).toEqual({ status: 200, body: 'slow done by long-1\n' })
  })
})
