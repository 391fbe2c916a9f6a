// The Log the action runs with: @actions/core's lines, groups and annotations.
// Every text is scrubbed of the run's secrets first (core/secrets.ts): it carries
// remote output (pip, migrations, tracebacks, journal lines). Annotations and
// group names are escaped by @actions/core (their text cannot start a line);
// plain lines are made inert here (see workflow-commands.ts).
import * as core from '@actions/core'
import type { Log } from '../core/log.js'
import { secrets } from '../core/secrets.js'
import { plainText } from './workflow-commands.js'

const clean = (text: string) => secrets.redact(text)

export const coreLog: Log = {
  info: message => core.info(plainText(clean(message))),
  warning: message => core.warning(clean(message)),
  error: (message, title) =>
    core.error(clean(message), title ? { title: clean(title) } : undefined),
  group: (name, fn) => core.group(clean(name), fn)
}
