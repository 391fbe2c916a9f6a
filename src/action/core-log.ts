// The Log the action runs with: @actions/core's lines, groups and annotations.
// Annotations and group names are escaped by @actions/core (their text cannot
// start a line); plain lines are made inert here (see workflow-commands.ts),
// since they carry remote output: pip, migrations, tracebacks, journal lines.
import * as core from '@actions/core'
import type { Log } from '../core/log.js'
import { plainText } from './workflow-commands.js'

export const coreLog: Log = {
  info: message => core.info(plainText(message)),
  warning: message => core.warning(message),
  error: (message, title) => core.error(message, title ? { title } : undefined),
  group: (name, fn) => core.group(name, fn)
}
