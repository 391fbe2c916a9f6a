// Parity with the SSH actions users come from, against real hosts: a pinned
// fingerprint of a host key that is not the host's preferred type, a jump host
// with its own user, key, passphrase and known-hosts, a quoted migrate-command,
// and what gets uploaded (defaults, .deployignore, exclude).
import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import {
  acceptedLogins,
  annotations,
  appCopy,
  appendTo,
  inputsFor,
  printedOutput,
  rootExec,
  rootSh,
  runAction,
  servedRelease
} from './kit.js'
import { problems } from './problems.js'
import { withHostGroup } from './with-host.js'

describe('SSH parity', () => {
  /** `256 SHA256:… root@sp1 (ECDSA)`, as ssh-keygen -l prints it */
  let ecdsaLine: string
  let hopKey: string
  const hopPassphrase = 'hop passphrase 314159'

  const { sp1: target, sp2: bastion } = withHostGroup({ sp1: 'fixed', sp2: 'fixed' }, async () => {
    // A second host key: sshd now has ED25519 and ECDSA, and clients prefer ED25519.
    await rootSh(
      target,
      'ssh-keygen -q -t ecdsa -b 256 -N "" -f /etc/ssh/ssh_host_ecdsa_key && ' +
        'echo "HostKey /etc/ssh/ssh_host_ecdsa_key" >> /etc/ssh/sshd_config.d/zdd.conf && ' +
        'systemctl reload ssh && sleep 0.5'
    )
    ecdsaLine = (await rootSh(target, 'ssh-keygen -lf /etc/ssh/ssh_host_ecdsa_key.pub')).trim()
    // The jump host's own login: user hop, a key with a passphrase, not authorized on the target.
    const dir = mkdtempSync(path.join(tmpdir(), 'zdd-hop-'))
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', hopPassphrase, '-f', `${dir}/hop`])
    hopKey = readFileSync(`${dir}/hop`, 'utf8')
    await rootExec(bastion, [
      'sh',
      '-c',
      'useradd -m -s /bin/sh hop && install -d -m 700 -o hop -g hop /home/hop/.ssh && ' +
        'printf "%s\\n" "$1" > /home/hop/.ssh/authorized_keys && ' +
        'chown hop:hop /home/hop/.ssh/authorized_keys && chmod 600 /home/hop/.ssh/authorized_keys',
      'sh',
      readFileSync(`${dir}/hop.pub`, 'utf8').trim()
    ])
  })

  it('pins the ECDSA key of a host that prefers ED25519: typed as ssh-keygen -l prints it, and untyped', async () => {
    expect(ecdsaLine).toMatch(/^256 SHA256:\S+ .*\(ECDSA\)$/)
    const typed = await runAction(
      inputsFor(target, { mode: 'check', 'known-hosts': '', 'host-fingerprint': ecdsaLine })
    )
    expect(typed.outputs.status).toBe('checked')
    const untyped = await runAction(
      inputsFor(target, {
        mode: 'check',
        'known-hosts': '',
        'host-fingerprint': ecdsaLine.split(' ')[1]
      })
    )
    expect(untyped.outputs.status).toBe('checked')
  })

  it('refuses a host none of whose keys match the pin, listing each key it presented, without logging in', async () => {
    const logins = await acceptedLogins(target, 'deploy')
    const run = await runAction(
      inputsFor(target, {
        mode: 'check',
        'known-hosts': '',
        'host-fingerprint': bastion.fingerprint,
        'connect-retries': '2'
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain(`ssh-ed25519 ${target.fingerprint}`)
    expect(annotations(run)).toContain(`ecdsa-sha2-nistp256 ${ecdsaLine.split(' ')[1]}`)
    expect(annotations(run)).not.toContain('retrying')
    expect(await acceptedLogins(target, 'deploy')).toBe(logins)
  })

  it('deploys through a jump host with its own user, key, passphrase and known-hosts; uploads what the rules keep; runs a quoted migrate-command', async () => {
    const hopLogins = await acceptedLogins(bastion, 'hop')
    const source = appCopy(dir => {
      appendTo(path.join(dir, 'wsgi.py'), '\n\ndef create_app():\n    return app\n')
      for (const [rel, content] of Object.entries({
        '.venv/bin/python': '',
        '.tox/py311/log.txt': '',
        '.pytest_cache/README.md': '',
        '__pycache__/stale.cpython-311.pyc': '',
        'notes/todo.txt': '',
        'docs/index.md': '',
        'keep.pyc': '',
        '.deployignore': 'docs/\n'
      })) {
        mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true })
        writeFileSync(path.join(dir, rel), content)
      }
    })
    const run = await runAction(
      inputsFor(target, {
        'jump-host': bastion.ip,
        'jump-username': 'hop',
        'jump-private-key': hopKey,
        'jump-passphrase': hopPassphrase,
        'jump-known-hosts': readFileSync(bastion.knownHosts, 'utf8'),
        source,
        'release-id': 'p1',
        exclude: 'notes/\n!keep.pyc',
        'migrate-command':
          '/srv/myapp/.venv/bin/python -m flask --app "wsgi:create_app()" db upgrade'
      })
    )
    expect(problems(run)).toBe('')
    expect(run.outputs.status).toBe('deployed')
    expect(run.stdout).toContain(`through hop@${bastion.ip}:22`)
    expect(run.stdout).toContain(
      'ran /srv/myapp/.venv/bin/python -m flask --app wsgi:create_app() db upgrade'
    )
    // the runner hides masked values: only the ::add-mask:: commands themselves may carry it
    expect(printedOutput(run)).not.toContain(hopPassphrase)
    expect(await servedRelease(target)).toBe('p1')
    expect(await acceptedLogins(bastion, 'hop')).toBe(hopLogins + 1)

    const files = (await rootSh(target, 'cd /srv/myapp/releases/p1 && find . | sort')).split('\n')
    expect(files).toEqual(expect.arrayContaining(['./wsgi.py', './keep.pyc', './migrations']))
    for (const gone of [
      './.venv',
      './.tox',
      './.pytest_cache',
      // (the server's own import check writes __pycache__/ into the release; the source's
      // own __pycache__/stale.cpython-311.pyc must not be uploaded)
      './__pycache__/stale.cpython-311.pyc',
      './notes',
      './docs',
      './.deployignore'
    ])
      expect(files).not.toContain(gone)
    expect(run.summary).toMatch(/Release p1: \d+ files, \d+ KiB packed/)
    expect(run.stdout).toMatch(/left out: .*\.venv\//)
  })

  it('refuses a jump host whose own pins do not match, before logging in there', async () => {
    const hopLogins = await acceptedLogins(bastion, 'hop')
    const wrong = readFileSync(target.knownHosts, 'utf8').replace(target.ip, bastion.ip)
    const run = await runAction(
      inputsFor(target, {
        mode: 'check',
        'jump-host': `hop@${bastion.ip}`,
        'jump-private-key': hopKey,
        'jump-passphrase': hopPassphrase,
        'jump-known-hosts': wrong
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain(`Host key of hop@${bastion.ip}:22`)
    expect(await acceptedLogins(bastion, 'hop')).toBe(hopLogins)
  })

  it('refuses a migrate-command with shell operators before connecting', async () => {
    const logins = await acceptedLogins(target, 'deploy')
    const run = await runAction(
      inputsFor(target, {
        source: appCopy(),
        'release-id': 'p2',
        'migrate-command': 'flask db upgrade && rm -rf /srv/myapp'
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain("Input 'migrate-command'")
    expect(annotations(run)).toContain('operator &&')
    expect(await acceptedLogins(target, 'deploy')).toBe(logins)
  })
})
