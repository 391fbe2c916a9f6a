// A Log for unit tests that keeps every line it is given, prefixed with its
// level; with `groups`, also where each group begins and ends.
import type { Log } from '../src/core/log.js'

export function recorder(opts: { groups?: boolean } = {}): Log & { lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    info: m => lines.push(`info ${m}`),
    warning: m => lines.push(`warning ${m}`),
    error: m => lines.push(`error ${m}`),
    group: async (name, fn) => {
      if (!opts.groups) return fn()
      lines.push(`group ${name}`)
      const value = await fn()
      lines.push('endgroup')
      return value
    }
  }
}
