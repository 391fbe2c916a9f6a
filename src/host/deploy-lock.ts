// The deploy lock: a directory in release-path holding owner.json, renamed into place atomically.
// Waits for another deploy up to lock-timeout; takes over a stale lock with a warning.
// While held, a heartbeat refreshes its age, so a long deploy never looks stale.
import { randomBytes } from 'node:crypto'
import type { Log } from '../core/log.js'
import {
  HelperError,
  helperOf,
  type HelperClient,
  type HelperHost,
  type LockOwner
} from './helper-client.js'
import { replaceIfDropped, type Connection, type RemoteHost } from '../transport/ssh-connection.js'

export interface HeldLock {
  dir: string
  owner: LockOwner
  /** Stops the heartbeat that keeps the lock from looking stale during a long deploy. */
  stopHeartbeat: () => void
  /** Aborted (with a LockLostError as its reason) when the heartbeat finds the lock is not ours. */
  lost: AbortSignal
}

/** The lock is no longer this run's: another deploy took it over, or it was removed. */
export class LockLostError extends Error {
  constructor(dir: string) {
    super(
      `the deploy lock ${dir} is no longer held by this run (its heartbeat found it taken over by another deploy, or removed): this run stopped before changing anything more on the host, and leaves what it did not finish to the deploy that holds the lock now. Check which release ${dir.replace(/\/\.deploy-lock$/, '/current')} points at and that it serves.`
    )
    this.name = 'LockLostError'
  }
}

/** How often a held lock is marked alive: well within lock-stale-after, at most once a minute. */
function heartbeatMs(staleSeconds: number): number {
  return Math.min(60_000, Math.max(1000, (staleSeconds * 1000) / 4))
}

/**
 * Touches the lock directory every heartbeatMs while the deploy runs, so that
 * only a deploy that stopped (crashed runner, lost host) ever looks stale. A
 * heartbeat that finds the lock is not ours any more aborts `lost`; other
 * failures are ignored (a lost connection is handled by the deploy itself).
 */
function startHeartbeat(
  remote: RemoteHost,
  dir: string,
  token: string,
  every: number,
  lost: AbortController
) {
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    helperOf(remote)
      .touchLock(dir, token)
      .then(answer => {
        if (!answer.fresh) {
          clearInterval(timer)
          lost.abort(new LockLostError(dir))
        }
      })
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
      const lost = new AbortController()
      const stopHeartbeat = startHeartbeat(
        remote,
        dir,
        owner.token,
        heartbeatMs(options.staleSeconds),
        lost
      )
      return { dir, owner, stopHeartbeat, lost: lost.signal }
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

/**
 * `remote` for as long as the lock is ours: once the heartbeat finds it is not, every
 * command, new or under way (stopped on the host), fails with LockLostError, so the
 * run changes nothing more.
 */
function whileHeld(remote: RemoteHost, lost: AbortSignal): RemoteHost {
  const check = () => {
    if (lost.aborted) throw lost.reason as Error
  }
  // a host that answers the helper's commands itself (a test's fake) is guarded the same way
  const helper = (remote as Partial<HelperHost>).helper
  const guarded: RemoteHost & Partial<HelperHost> = {
    ...(helper ? { helper: guardedHelper(helper, check) } : {}),
    target: remote.target,
    exec: async (command, options = {}) => {
      check()
      const signal = options.signal ? AbortSignal.any([options.signal, lost]) : lost
      const result = await remote.exec(command, { ...options, signal })
      check()
      return result
    },
    openChannel: async to => {
      check()
      return remote.openChannel(to)
    },
    isConnected: () => remote.isConnected(),
    close: () => remote.close()
  }
  unguarded.set(guarded, remote)
  return guarded
}

const unguarded = new WeakMap<RemoteHost, RemoteHost>()

/** `helper` whose every command fails the same way once `check` throws, before and after it runs. */
function guardedHelper(helper: HelperClient, check: () => void): HelperClient {
  return new Proxy(helper, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver)
      if (typeof value !== 'function') return value
      return async (...args: unknown[]) => {
        check()
        const answer: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(
          target,
          args
        )
        check()
        return answer
      }
    }
  })
}

/**
 * Runs `fn` holding the lock; released on every path, through the connection in use then.
 * While `fn` runs, `conn` (and a connection made to replace it) stops working once the
 * lock is found not to be ours any more: `fn` fails with LockLostError.
 */
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
  const reconnect = conn.reconnect
  conn.remote = whileHeld(conn.remote, lock.lost)
  if (reconnect) conn.reconnect = async () => whileHeld(await reconnect(), lock.lost)
  try {
    return await fn()
  } catch (error) {
    throw lock.lost.aborted ? lock.lost.reason : error
  } finally {
    conn.remote = unguarded.get(conn.remote) ?? conn.remote
    conn.reconnect = reconnect
    // A lock that is not ours is left to its holder; ours is released through the connection
    // in use then (one that dropped is replaced, so the lock is released even then).
    if (lock.lost.aborted) lock.stopHeartbeat()
    else await releaseLock(conn, lock, options.log)
  }
}
