// What a run is asked to do: every input, read and validated once by
// action/inputs.ts. The modes read it; the host layer gets only the fields it needs.
import type { Mode, Strategy } from '../core/strategy.js'
import type { Target } from '../core/targets.js'
import type { HostKeyPolicy } from '../transport/host-keys.js'
import type { HttpTarget } from '../transport/http-target.js'
import type { SshCredentials } from '../transport/ssh-connection.js'

export interface Settings {
  mode: Mode
  targets: Target[]
  jumpHost?: Target
  /** the jump host's key and pins (by default the target's); set exactly when jumpHost is */
  jumpCredentials?: SshCredentials
  privateKey: string
  passphrase?: string
  hostKeys: HostKeyPolicy
  /** Under blue-green: the template's name (`myapp` for myapp@.service, instances myapp@blue|green). */
  service: string
  strategy: Strategy
  /** blue-green: the old instance keeps running after a deploy (a rollback is an instant switch back). */
  keepPreviousWarm: boolean
  releasePath: string
  healthUrl: HttpTarget
  /** Requested at the server's loopback with the URL's host as Host and TLS server name. */
  nginxUrl: HttpTarget
  /** false: nginx-url was empty and nginxUrl is the default http://127.0.0.1<health path>. */
  nginxUrlGiven: boolean
  healthExpect?: string
  healthChecks: number
  source: string
  /** gitignore patterns left out of the release, after the defaults and .deployignore */
  exclude: string[]
  releaseId: string
  rollbackTo?: string
  reloadTimeoutSeconds: number
  connectTimeoutSeconds: number
  connectRetries: number
  lockTimeoutSeconds: number
  lockStaleSeconds: number
  keepReleases: number
  sharedPaths: string[]
  requiredEnv: string[]
  envFile?: string
  pipArgs: string[]
  /** pip-timeout: pip install is stopped on the host after this long. */
  pipTimeoutSeconds: number
  migrate: 'auto' | 'off'
  migrateCommand?: string[]
  /** migrate-timeout: flask db upgrade or migrate-command is stopped on the host after this long. */
  migrateTimeoutSeconds: number
  /**
   * restart-services: other units that run the same release (a Celery worker, an RQ
   * worker); restarted (or reloaded) and proven once the web release is proven.
   */
  restartServices: string[]
  /** before-switch: the user's own command, run on the host before the switch. */
  beforeSwitch?: string
  /** after-switch: the user's own command, run on the host once the release is proven. */
  afterSwitch?: string
  /** hook-timeout: a hook is stopped on the host after this long. */
  hookTimeoutSeconds: number
  probe: boolean
  nginxErrorLog: string
  warnOnly: boolean
  /** Every proof that cannot be obtained fails the run before any change. */
  strict: boolean
  maxParallel: number
  /** label of the canary target, when one is set */
  canary?: string
  maxFailures: number
  rollbackFleet: boolean
  /** label of the target that runs the fleet's migrations (default: the first deployed) */
  migrateHost?: string
  /** Record a GitHub deployment and its statuses (never fails the run). */
  githubDeployment: boolean
  /** Empty: no deployment is recorded. */
  githubToken: string
  environment: string
  environmentUrl?: string
}
