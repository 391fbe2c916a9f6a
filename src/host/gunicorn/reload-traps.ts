// The reload traps of design.md, decided from the unit alone: a reload (HUP)
// that cannot change the code Gunicorn serves.
import { optionsUnseen, type GunicornCommand, type UnitInfo } from './unit-info.js'

export class PreflightError extends Error {
  /** `fix` undefined: the cause already names a fix for each problem. */
  constructor(cause: string, fix?: string) {
    super(fix === undefined ? cause : `${cause}\nFix: ${fix}`)
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

/** The reload traps of design.md, decided from the unit alone: a PreflightError or undefined. */
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
