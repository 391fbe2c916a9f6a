// Cancelling a run within the runner's grace period. On cancel, the runner sends
// SIGINT and kills the action a few seconds later: a cancel during pip or during
// a migration must stop the remote command, remove the uploaded release, release
// the lock and record the failure, and the host must still serve the release it
// served, all within 5 s of SIGINT. pip-timeout and migrate-timeout stop the
// command the same way and fail naming the input.
import { describe, expect, it } from '@jest/globals'
import { mkdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  annotations,
  appFor,
  inputsFor,
  rootSh,
  runAction,
  servedRelease,
  type ActionRun,
  type KitHost
} from './kit.js'
import { withHosts } from './with-host.js'

const GRACE_MS = 5000
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/**
 * A release whose requirements.txt names a package from a directory inside the
 * release; its setup.py builds for 30 s in a child process (as a compiler would),
 * after writing `started`. pip-args keep it local: no index, no build isolation.
 */
function slowPipRelease(host: KitHost, id: string, started: string): string {
  return appFor(host, dir => {
    mkdirSync(path.join(dir, 'slowbuild'))
    writeFileSync(
      path.join(dir, 'slowbuild', 'setup.py'),
      [
        'import subprocess',
        'from setuptools import setup',
        `open(${JSON.stringify(started)}, "w").close()`,
        'subprocess.run(["sleep", "37"], check=True)  # a long build step',
        'setup(name="slowbuild", version="1.0", py_modules=[])',
        ''
      ].join('\n')
    )
    writeFileSync(
      path.join(dir, 'requirements.txt'),
      `# ${id}\nslowbuild @ file://${host.releasePath}/releases/${id}/slowbuild\n`
    )
  })
}

const PIP_ARGS = '--no-index --no-deps --no-build-isolation'

/** A release whose migration (migrate-command, run in the release) takes 30 s. */
function slowMigrationRelease(host: KitHost, started: string): string {
  return appFor(host, dir => {
    writeFileSync(
      path.join(dir, 'slow_migration.py'),
      [
        'import subprocess',
        `open(${JSON.stringify(started)}, "w").close()`,
        'subprocess.run(["sleep", "38"], check=True)  # a long data migration',
        ''
      ].join('\n')
    )
  })
}

/** Whether `file` exists on the host. */
async function exists(host: KitHost, file: string): Promise<boolean> {
  return (await rootSh(host, `test -e '${file}' && echo yes || true`)).trim() === 'yes'
}

interface CancelledRun {
  run: ActionRun
  /** ms from SIGINT to the action's exit */
  exitMs: number
}

/**
 * Runs the action and sends SIGINT once the slow step wrote `started` on the host
 * (polled from the moment `stepLine` is printed). Returns when the action exited.
 */
async function runAndCancel(
  host: KitHost,
  inputs: Record<string, string>,
  stepLine: string,
  started: string
): Promise<CancelledRun> {
  let sentAt = 0
  let polling = false
  const poll = async (pid: number) => {
    const until = Date.now() + 60_000
    while (Date.now() < until) {
      if (await exists(host, started)) {
        sentAt = Date.now()
        process.kill(pid, 'SIGINT')
        return
      }
      await sleep(100)
    }
  }
  const run = await runAction(inputs, {
    onLine: (line, pid) => {
      if (!polling && line.includes(stepLine)) {
        polling = true
        void poll(pid)
      }
    }
  })
  const exitMs = Date.now() - sentAt
  if (sentAt === 0) throw new Error(`never sent SIGINT:\n${run.stdout}\n${run.stderr}`)
  return { run, exitMs }
}

/** What a cancel or a timeout before the switch must leave on the host. */
async function expectUntouched(host: KitHost, before: string, id: string): Promise<void> {
  expect(await servedRelease(host)).toBe(before)
  expect((await rootSh(host, `readlink ${host.releasePath}/current`)).trim()).toBe(
    `releases/${before}`
  )
  const top = await rootSh(host, `ls -A ${host.releasePath}`)
  expect(top.split('\n')).not.toContain('.deploy-lock')
  const releases = await rootSh(host, `ls -A ${host.releasePath}/releases`)
  expect(releases.split('\n')).not.toContain(id)
  expect(releases).not.toContain('.incoming-')
  // the last entry of the release log is this deploy, failed
  const last = (await rootSh(host, `tail -n 1 ${host.releasePath}/.deploy-log.jsonl`)).trim()
  expect(JSON.parse(last)).toMatchObject({ id, outcome: 'failed' })
}

/** Processes of the deploy user still running the slow step (none may be left). */
async function leftovers(host: KitHost, pattern: string): Promise<string> {
  return (
    await rootSh(
      host,
      `ps -u deploy -o pid=,stat=,args= | grep -E '${pattern}' | grep -v grep | grep -v ' Z' || true`
    )
  ).trim()
}

describe('cancelling a deploy within the runner grace period', () => {
  const hosts = withHosts({ cx1: {} })

  it('stops pip on SIGINT, cleans up and exits within 5 s, the previous release serving', async () => {
    const host = hosts.cx1
    const before = await servedRelease(host)
    const id = 'cx-pip-cancel'
    const started = `/tmp/${id}.started`
    const { run, exitMs } = await runAndCancel(
      host,
      inputsFor(host, {
        source: slowPipRelease(host, id, started),
        'release-id': id,
        'pip-args': PIP_ARGS
      }),
      'Dependencies',
      started
    )
    expect(run.code).not.toBe(0)
    expect(exitMs).toBeLessThan(GRACE_MS)
    expect(annotations(run)).toContain('cancelled (SIGINT)')
    expect(annotations(run)).toContain('pip install')
    expect(annotations(run)).toContain('was cancelled: it was stopped on the host')
    expect(run.outputs.status).toBe('failed')
    expect(await leftovers(host, 'pip install|sleep 37|setup.py')).toBe('')
    await expectUntouched(host, before, id)
  })

  it('stops a migration on SIGINT, cleans up and exits within 5 s, the previous release serving', async () => {
    const host = hosts.cx1
    const before = await servedRelease(host)
    const id = 'cx-migrate-cancel'
    const started = `/tmp/${id}.started`
    const { run, exitMs } = await runAndCancel(
      host,
      inputsFor(host, {
        source: slowMigrationRelease(host, started),
        'release-id': id,
        'migrate-command': 'python3 slow_migration.py'
      }),
      'Migrations',
      started
    )
    expect(run.code).not.toBe(0)
    expect(exitMs).toBeLessThan(GRACE_MS)
    expect(annotations(run)).toContain('cancelled (SIGINT)')
    expect(annotations(run)).toContain('migrate-command')
    expect(run.outputs.status).toBe('failed')
    expect(await leftovers(host, 'slow_migration|sleep 38')).toBe('')
    await expectUntouched(host, before, id)
  })

  it('stops pip past pip-timeout and fails naming it', async () => {
    const host = hosts.cx1
    const before = await servedRelease(host)
    const id = 'cx-pip-timeout'
    const started = Date.now()
    const run = await runAction(
      inputsFor(host, {
        source: slowPipRelease(host, id, `/tmp/${id}.started`),
        'release-id': id,
        'pip-args': PIP_ARGS,
        'pip-timeout': '10'
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain('did not finish within 10s (pip-timeout)')
    expect(Date.now() - started).toBeLessThan(30_000) // the build alone takes 37 s
    expect(await leftovers(host, 'pip install|sleep 37|setup.py')).toBe('')
    await expectUntouched(host, before, id)
  })

  it('stops a migration past migrate-timeout and fails naming it', async () => {
    const host = hosts.cx1
    const before = await servedRelease(host)
    const id = 'cx-migrate-timeout'
    const run = await runAction(
      inputsFor(host, {
        source: slowMigrationRelease(host, `/tmp/${id}.started`),
        'release-id': id,
        'migrate-command': 'python3 slow_migration.py',
        'migrate-timeout': '10'
      })
    )
    expect(run.code).not.toBe(0)
    expect(annotations(run)).toContain('did not finish within 10s (migrate-timeout)')
    expect(await leftovers(host, 'slow_migration|sleep 38')).toBe('')
    await expectUntouched(host, before, id)
  })
})
