// The one place that runs `sudo systemctl <action> <unit>` for the cutovers:
// a refused right is one typed error (with the sudoers line that grants it),
// any other failure another, so callers decide from the type, never from text.
import { sudoersLine, type Access } from './access.js'
import { asRoot, serviceCommands } from './service-commands.js'
import { tailLines } from '../transport/remote-command.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

export type UnitAction = 'reload' | 'restart' | 'start' | 'stop'

/** What sudo prints when it will not run a command for this user without a password. */
const REFUSED = /password is required|not allowed|may not run/i

/** systemctl did not run, or failed; `refused`: sudo would not run it (nothing reached the unit). */
export class SystemctlError extends Error {
  constructor(
    readonly action: UnitAction,
    readonly unit: string,
    readonly refused: boolean,
    message: string,
    /** When the command got no answer (the connection dropped), it may have run. */
    readonly noAnswer = false
  ) {
    super(message)
    this.name = 'SystemctlError'
  }
}

export interface Systemd {
  run(action: UnitAction, unit: string): Promise<void>
}

/** systemctl through sudo on `remote`, as the deploy user with `access`. */
export function systemd(remote: () => RemoteHost, access: Access, timeoutMs = 120_000): Systemd {
  return {
    async run(action, unit) {
      const host = remote()
      const result = await host.exec(toShell(asRoot(serviceCommands[action](unit))), { timeoutMs })
      if (result.code === 0) return
      if (REFUSED.test(result.stderr))
        throw new SystemctlError(
          action,
          unit,
          true,
          `sudo refused systemctl ${action} ${unit} for ${host.target.user}: the deploy user needs ${sudoersLine(access, unit, [action])}`
        )
      const noAnswer = result.code === null
      throw new SystemctlError(
        action,
        unit,
        false,
        `systemctl ${action} ${unit} ${noAnswer ? 'got no answer (the connection may have dropped)' : `failed (exit ${result.code})`}${result.stderr.trim() ? `: ${tailLines(result.stderr, 8)}` : ''}`,
        noAnswer
      )
    }
  }
}
