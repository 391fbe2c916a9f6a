// Progress and annotations. The deploy logic talks to `Log`; the action
// passes the @actions/core implementation, tests pass a recorder.
import * as core from '@actions/core'

export interface Log {
  info(message: string): void
  warning(message: string): void
  error(message: string, title?: string): void
  group<T>(name: string, fn: () => Promise<T>): Promise<T>
}

export const coreLog: Log = {
  info: message => core.info(message),
  warning: message => core.warning(message),
  error: (message, title) => core.error(message, title ? { title } : undefined),
  group: (name, fn) => core.group(name, fn)
}

/**
 * Prefixes every line with the host, so parallel hosts stay readable. Hosts
 * running in parallel get no log groups (groups cannot interleave).
 */
export function hostLog(log: Log, host: string, parallel = false): Log {
  const tag = (m: string) => `[${host}] ${m}`
  return {
    info: m => log.info(tag(m)),
    warning: m => log.warning(tag(m)),
    error: (m, title) => log.error(tag(m), title),
    group: (name, fn) => {
      if (!parallel) return log.group(tag(name), fn)
      log.info(tag(`== ${name}`))
      return fn()
    }
  }
}
