// The deploy lock: a directory in release-path holding owner.json, renamed into place atomically.
// Waits for another deploy up to lock-timeout; takes over a stale lock with a warning.
import { randomBytes } from 'node:crypto'
import type { Log } from './log.js'
import { helperArgv } from './remote-helper.js'
import { runStep } from './remote-command.js'
import { toShell } from './shell-quote.js'
import type { RemoteHost } from './ssh-connection.js'

export interface LockOwner {
  token: string
  actor: string
  run: string
  release: string
  since: string
}

export interface HeldLock {
  dir: string
  owner: LockOwner
}

interface LockAnswer {
  taken: boolean
  stale: boolean
  holder: Partial<LockOwner>
  age: number
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

export function describeHolder(h: Partial<LockOwner>): string {
  return `${h.actor ?? 'unknown'} (release ${h.release ?? '?'}, since ${h.since ?? '?'}, run ${h.run ?? '?'})`
}

export async function acquireLock(
  remote: RemoteHost,
  dir: string,
  who: Omit<LockOwner, 'token' | 'since'>,
  options: { timeoutSeconds: number; staleSeconds: number; log: Log; pollMs?: number }
): Promise<HeldLock> {
  const owner: LockOwner = {
    ...who,
    token: randomBytes(12).toString('hex'),
    since: new Date().toISOString()
  }
  const deadline = Date.now() + options.timeoutSeconds * 1000
  let announced = false
  for (;;) {
    const result = await runStep(
      remote,
      'take the deploy lock',
      toShell(
        helperArgv('python3', 'lock', dir, JSON.stringify(owner), String(options.staleSeconds))
      )
    )
    const answer = JSON.parse(result.stdout) as LockAnswer
    if (answer.taken) {
      if (answer.stale)
        options.log.warning(
          `took over a stale deploy lock (${answer.age}s old) held by ${describeHolder(answer.holder)}`
        )
      return { dir, owner }
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `another deploy holds the lock ${dir}: ${describeHolder(answer.holder)}; waited ${options.timeoutSeconds}s (lock-timeout). If that deploy is dead, the lock is taken over after lock-stale-after, or remove ${dir} by hand.`
      )
    }
    if (!announced) {
      options.log.info(
        `waiting for the deploy lock held by ${describeHolder(answer.holder)} (up to ${options.timeoutSeconds}s)`
      )
      announced = true
    }
    await sleep(options.pollMs ?? 2000)
  }
}

/** Releases the lock if it is still ours; never throws (it runs in finally blocks). */
export async function releaseLock(remote: RemoteHost, lock: HeldLock, log: Log): Promise<void> {
  const result = await remote.exec(
    toShell(helperArgv('python3', 'unlock', lock.dir, lock.owner.token)),
    { timeoutMs: 15_000 }
  )
  if (result.code !== 0)
    log.warning(
      `could not release the deploy lock ${lock.dir}: ${result.stderr.trim() || 'connection lost'}; it is taken over after lock-stale-after`
    )
  else if (result.stdout.trim() !== 'released')
    log.warning(`the deploy lock ${lock.dir} was no longer ours (taken over?)`)
}
