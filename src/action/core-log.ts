// The Log the action runs with: @actions/core's lines, groups and annotations.
import * as core from '@actions/core'
import type { Log } from '../core/log.js'

export const coreLog: Log = {
  info: message => core.info(message),
  warning: message => core.warning(message),
  error: (message, title) => core.error(message, title ? { title } : undefined),
  group: (name, fn) => core.group(name, fn)
}
