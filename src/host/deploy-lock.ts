// The deploy lock: a directory in release-path holding owner.json, renamed into place atomically.
// Waits for another deploy up to lock-timeout; takes over a stale lock with a warning.
// While held, a heartbeat refreshes its age, so a long deploy never looks stale.
import { randomBytes } from 'node:crypto'
import type { Log } from '../core/log.js'
import { HelperError, helperOf, type LockOwner } from './helper-client.js'
import { replaceIfDropped, type Connection, type RemoteHost } from '../transport/ssh-connection.js'

export interface HeldLock {
  dir: string
  owner: LockOwner
  /** Stops the heartbeat that keeps the lock from looking stale during a long deploy. */
  stopHeartbeat: () => void
}

/** How often a held lock is marked alive: well within lock-stale-after, at most once a minute. */
function heartbeatMs(staleSeconds: number): number {
  return Math.min(60_000, Math.max(1000, (staleSeconds * 1000) / 4))
}

/**
 * Touches the lock directory every heartbeatMs while the deploy runs, so that
 * only a deploy that stopped (crashed runner, lost host) ever looks stale.
 * Failures are ignored: a lost connection is handled by the deploy itself.
 */
function startHeartbeat(remote: RemoteHost, dir: string, token: string, every: number) {
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    helperOf(remote)
      .touchLock(dir, token)
      .catch(() => undefined)
      .finally(() => {
        busy = false
      })
  }, every)
  timer.unref()
  return () => clearInterval(timer)
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

export function describeHolder(h: Partial<LockOwner>): string {
  return `${h.actor ?? 'unknown'} (release ${h.release ?? '?'}, since ${h.since ?? '?'}, run ${h.run ?? '?'})`
}

/** How long to wait for the lock, when a holder counts as gone, and what stops the wait. */
export interface LockWait {
  timeoutSeconds: number
  staleSeconds: number
  log: Log
  /** Stops waiting for a lock another deploy holds (e.g. preflight failed meanwhile). */
  signal?: AbortSignal
  /** Called once when the lock is found held by another run (the wait begins). */
  onWait?: () => void
}

export async function acquireLock(
  remote: RemoteHost,
  dir: string,
  who: Omit<LockOwner, 'token' | 'since'>,
  options: LockWait & { pollMs?: number }
): Promise<HeldLock> {
  const owner: LockOwner = {
    ...who,
    token: randomBytes(12).toString('hex'),
    since: new Date().toISOString()
  }
  const deadline = Date.now() + options.timeoutSeconds * 1000
  let announced = false
  for (;;) {
    const answer = await helperOf(remote).lock(dir, owner, options.staleSeconds)
    if (answer.taken) {
      if (answer.stale)
        options.log.warning(
          `took over a stale deploy lock (${answer.age}s old) held by ${describeHolder(answer.holder)}`
        )
      const stopHeartbeat = startHeartbeat(
        remote,
        dir,
        owner.token,
        heartbeatMs(options.staleSeconds)
      )
      return { dir, owner, stopHeartbeat }
    }
    if (options.signal?.aborted)
      throw new Error(
        `stopped waiting for the deploy lock ${dir} held by ${describeHolder(answer.holder)}`
      )
    if (Date.now() >= deadline) {
      throw new Error(
        `another deploy holds the lock ${dir}: ${describeHolder(answer.holder)}; waited ${options.timeoutSeconds}s (lock-timeout). If that deploy is dead, the lock is taken over after lock-stale-after, or remove ${dir} by hand.`
      )
    }
    if (!announced) {
      options.onWait?.()
      options.log.info(
        `waiting for the deploy lock held by ${describeHolder(answer.holder)} (up to ${options.timeoutSeconds}s)`
      )
      announced = true
    }
    await sleep(options.pollMs ?? 2000, options.signal)
  }
}

/**
 * Releases the lock if it is still ours; never throws (it runs in finally blocks). Given a
 * connection, a release that got no answer (the connection dropped) is tried again over a
 * new one.
 */
export async function releaseLock(
  remote: RemoteHost | Connection,
  lock: HeldLock,
  log: Log
): Promise<void> {
  lock.stopHeartbeat()
  const conn = 'exec' in remote ? undefined : remote
  const unlock = (over: RemoteHost) =>
    helperOf(over)
      .unlock(lock.dir, lock.owner.token)
      .catch((error: unknown) => error as Error)
  let answer = await unlock(conn?.remote ?? (remote as RemoteHost))
  if (answer instanceof HelperError && answer.dropped && conn?.reconnect) {
    await replaceIfDropped(conn, m => log.warning(m)).catch(() => undefined)
    answer = await unlock(conn.remote)
  }
  if (answer instanceof Error)
    log.warning(
      `could not release the deploy lock ${lock.dir}: ${answer.message}; it is taken over after lock-stale-after`
    )
  else if (!answer.released)
    log.warning(`the deploy lock ${lock.dir} was no longer ours (taken over?)`)
}

/** Runs `fn` holding the lock; released on every path, through the connection in use then. */
export async function withLock<T>(
  conn: Connection,
  dir: string,
  who: Omit<LockOwner, 'token' | 'since'>,
  options: LockWait & {
    /** Wraps the wait for the lock (e.g. to time it as a step). */
    timing?: (wait: () => Promise<HeldLock>) => Promise<HeldLock>
  },
  fn: () => Promise<T>
): Promise<T> {
  const take = () => acquireLock(conn.remote, dir, who, options)
  const lock = await (options.timing ? options.timing(take) : take())
  try {
    return await fn()
  } finally {
    // Through the connection in use then; one that dropped is replaced, so the lock is released even then.
    await releaseLock(conn, lock, options.log)
  }
}
