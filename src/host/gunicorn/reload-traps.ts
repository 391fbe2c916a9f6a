// The reload traps, decided from the unit alone: a reload (HUP) that cannot change
// the code Gunicorn serves. --preload (the master keeps the app it loaded); a
// WorkingDirectory under current without --chdir (Gunicorn keeps the resolved
// directory it started in); --chdir somewhere else than current.
import { FixableError } from '../../core/fixable-error.js'
import { optionsUnseen, type GunicornCommand, type UnitInfo } from './unit-info.js'

/** What stops a deploy before any change, with its cause and fix as fields. */
export class PreflightError extends FixableError {
  constructor(cause: string, fix?: string) {
    super(cause, fix)
    this.name = 'PreflightError'
  }
}

const HUP_RE = /^(-HUP|-SIGHUP|-1|--signal=HUP|-sHUP)$/

/** Whether ExecReload sends HUP to the main PID (kill -HUP $MAINPID and its spellings). */
export function reloadSendsHup(execReload: string[]): boolean {
  if (execReload.length < 2 || !/(^|\/)kill$/.test(execReload[0])) return false
  const args = execReload
    .slice(1)
    .join(' ')
    .replace(/-s HUP|--signal HUP|-s SIGHUP/, '-HUP')
    .split(' ')
  return args.some(a => HUP_RE.test(a)) && args.some(a => a === '$MAINPID' || a === '${MAINPID}')
}

/** The reload trap the unit sets, as a PreflightError (cause and fix), or undefined. */
export function reloadTrap(
  unit: UnitInfo,
  gunicorn: GunicornCommand,
  releasePath: string,
  service: string
): PreflightError | undefined {
  const current = `${releasePath}/current`
  if (gunicorn.preload) {
    return new PreflightError(
      `${service} runs Gunicorn with ${gunicorn.preloadSource ?? '--preload'}: the master holds the app it loaded, so a reload (HUP) keeps serving the OLD code.`,
      'remove --preload (preload_app) from the unit or the Gunicorn config; a graceful reload can then deploy new code.'
    )
  }
  if (gunicorn.chdir === undefined && !optionsUnseen(gunicorn)) {
    if (unit.workingDirectory === current || unit.workingDirectory.startsWith(current + '/')) {
      return new PreflightError(
        `${service} has WorkingDirectory=${unit.workingDirectory} and no --chdir: Gunicorn remembers the RESOLVED release directory it started in, so after a reload new workers keep importing the OLD release (while answering 200).`,
        `add --chdir ${current} to ExecStart (and set WorkingDirectory=${releasePath}), then daemon-reload and restart once; see examples/server/myapp.service.`
      )
    }
  }
  if (gunicorn.chdir !== undefined && gunicorn.chdir !== current) {
    return new PreflightError(
      `${service} runs Gunicorn with --chdir ${gunicorn.chdir}, not ${current}: switching current would not change the code Gunicorn loads.`,
      `use --chdir ${current}.`
    )
  }
  return undefined
}
