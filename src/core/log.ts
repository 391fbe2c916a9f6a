// Progress and annotations. The deploy logic talks to `Log`; the action
// passes the @actions/core implementation (action/core-log.ts), tests pass a recorder.

export interface Log {
  info(message: string): void
  warning(message: string): void
  error(message: string, title?: string): void
  group<T>(name: string, fn: () => Promise<T>): Promise<T>
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

/**
 * A log that holds its lines until `replay` prints them in a group of their own:
 * for a step that runs beside another step's log group.
 */
export function deferredLog(log: Log): Log & { replay(group: string): Promise<void> } {
  const held: ((to: Log) => void)[] = []
  return {
    info: m => held.push(to => to.info(m)),
    warning: m => held.push(to => to.warning(m)),
    error: (m, title) => held.push(to => to.error(m, title)),
    group: (_name, fn) => fn(),
    replay: group =>
      held.length === 0
        ? Promise.resolve()
        : log.group(group, async () => held.splice(0).forEach(line => line(log)))
  }
}
