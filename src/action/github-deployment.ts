// The run's GitHub deployment and its statuses, the one module that calls the
// GitHub API. It is bookkeeping: nothing here throws or fails a deploy, every
// call is time-bound, and the first failed call gives one warning (naming the
// permission when that is the cause) and ends the bookkeeping for the run.
import * as github from '@actions/github'
import type { HostResult } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import { secrets } from '../core/secrets.js'
import { overallStatus } from './report.js'
import type { RunContext } from '../core/run-stamp.js'
import type { Settings } from '../modes/settings.js'

/** What main.ts tells the deployment as the run goes. */
export interface DeploymentRecorder {
  /** The first host is about to start: mode deploy creates the deployment, `in_progress`. */
  begin(): void
  /**
   * A host finished. Mode rollback creates the deployment here, for the commit
   * the first restored release was built from. Returns `result` unchanged.
   */
  hostDone(result: HostResult): HostResult
  /** The run is over: `success` or `failure`. Never rejects. */
  finish(results: HostResult[], environmentUrl: string): Promise<void>
}

export const noDeployment: DeploymentRecorder = {
  begin: () => undefined,
  hostDone: result => result,
  finish: () => Promise.resolve()
}

export type DeploymentSettings = Pick<
  Settings,
  'mode' | 'githubDeployment' | 'githubToken' | 'environment' | 'releaseId' | 'targets'
>

export interface DeploymentOptions {
  /** GITHUB_API_URL and GITHUB_REPOSITORY come from here (the runner sets both). */
  env?: NodeJS.ProcessEnv
  /** Bound on each API call. */
  timeoutMs?: number
}

const PERMISSION = '`permissions: deployments: write`'
// GitHub cuts status descriptions at 140 characters.
const DESCRIPTION_MAX = 140

type Octokit = ReturnType<typeof github.getOctokit>
type State = 'in_progress' | 'success' | 'failure'

class CallTimeout extends Error {}

interface Api {
  octokit: Octokit
  owner: string
  repo: string
  apiUrl: string
  token: string
  timeoutMs: number
}

/** Where the API is and who we are, or undefined (with an info line) when nothing is recorded. */
function openApi(
  settings: DeploymentSettings,
  log: Log,
  options: DeploymentOptions
): Api | undefined {
  if (!settings.githubDeployment || settings.mode === 'check') return undefined
  const env = options.env ?? process.env
  const token = settings.githubToken
  if (token === '') {
    log.info('GitHub deployment not recorded: github-token is empty')
    return undefined
  }
  const [owner, repo, extra] = (env.GITHUB_REPOSITORY ?? '').split('/')
  if (!owner || !repo || extra !== undefined) {
    log.info('GitHub deployment not recorded: GITHUB_REPOSITORY does not name owner/repository')
    return undefined
  }
  const apiUrl = (env.GITHUB_API_URL || 'https://api.github.com').replace(/\/+$/, '')
  // @actions/github reads GITHUB_API_URL when it is first imported; pass it explicitly so the
  // value at run time is the one used.
  const silent = () => undefined
  const octokit: Octokit = github.getOctokit(token, {
    baseUrl: apiUrl,
    log: { debug: silent, info: silent, warn: silent, error: silent }
  })
  return { octokit, owner, repo, apiUrl, token, timeoutMs: options.timeoutMs ?? 5000 }
}

/** One run's deployment: calls are chained, and the first failure stops every later one. */
class Deployment implements DeploymentRecorder {
  private chain: Promise<void> = Promise.resolve()
  private deploymentId?: number
  private started = false
  private stopped = false
  private readonly hosts: string[]
  private readonly logUrl?: string

  constructor(
    private readonly api: Api,
    private readonly settings: DeploymentSettings,
    private readonly run: Pick<RunContext, 'sha' | 'runUrl'>,
    private readonly log: Log
  ) {
    this.hosts = settings.targets.map(t => t.label)
    this.logUrl = /^https?:\/\//.test(run.runUrl) ? run.runUrl : undefined
  }

  /** Runs one API call; the first failure warns once and stops every later call. */
  private async call<T>(
    what: string,
    fn: (signal: AbortSignal) => Promise<T>
  ): Promise<T | undefined> {
    if (this.stopped) return undefined
    try {
      return await timeBound(fn, this.api.timeoutMs)
    } catch (error) {
      this.stopped = true
      this.log.warning(
        redact(explain(what, error, this.api.apiUrl, this.api.timeoutMs), this.api.token)
      )
      return undefined
    }
  }

  private async setStatus(state: State, description: string, environmentUrl?: string) {
    if (this.deploymentId === undefined) return
    const id = this.deploymentId
    const { octokit, owner, repo } = this.api
    await this.call(`set the deployment ${id} to ${state}`, signal =>
      octokit.rest.repos.createDeploymentStatus({
        owner,
        repo,
        deployment_id: id,
        state,
        description: clip(description),
        ...(this.logUrl ? { log_url: this.logUrl } : {}),
        ...(environmentUrl ? { environment_url: environmentUrl } : {}),
        request: { signal }
      })
    )
  }

  private async create(ref: string, release: string, description: string) {
    const { octokit, owner, repo } = this.api
    const { settings, run } = this
    const response = await this.call(
      `create a deployment of ${ref} in ${settings.environment}`,
      signal =>
        octokit.rest.repos.createDeployment({
          owner,
          repo,
          ref,
          environment: settings.environment,
          description: clip(description),
          payload: { release, hosts: this.hosts, mode: settings.mode, run: run.runUrl },
          required_contexts: [],
          auto_merge: false,
          request: { signal }
        })
    )
    if (!response) return
    const data = response.data as { id?: unknown; message?: unknown }
    if (typeof data.id !== 'number') {
      this.stopped = true
      this.log.warning(
        redact(
          `GitHub deployment not recorded: the API created none (HTTP ${response.status}${typeof data.message === 'string' ? `: ${data.message}` : ''}). The deploy is not affected.`,
          this.api.token
        )
      )
      return
    }
    this.deploymentId = data.id
    this.log.info(`GitHub deployment ${data.id} of ${ref.slice(0, 12)} in ${settings.environment}`)
  }

  private start(ref: string, release: string, what: string) {
    this.started = true
    this.chain = this.chain.then(async () => {
      await this.create(ref, release, `${what} on ${this.hosts.join(', ')}`)
      await this.setStatus('in_progress', `${what}: ${this.hosts.length} host(s)`)
    })
  }

  begin() {
    if (this.settings.mode !== 'deploy' || this.started) return
    if (this.run.sha === '') {
      this.log.info('GitHub deployment not recorded: the commit sha of this run is unknown')
      this.started = true
      return
    }
    this.start(this.run.sha, this.settings.releaseId, `deploy ${this.settings.releaseId}`)
  }

  hostDone = (result: HostResult): HostResult => {
    if (this.settings.mode === 'rollback' && !this.started && result.sha && result.release)
      this.start(result.sha, result.release, `rollback to ${result.release}`)
    return result
  }

  async finish(results: HostResult[], environmentUrl: string) {
    await this.chain
    if (!this.started && this.settings.mode === 'rollback')
      this.log.info(
        'GitHub deployment not recorded: no host restored a release whose commit the release log names'
      )
    const { state, description } = finalStatus(this.settings, results)
    await this.setStatus(state, description, state === 'success' ? environmentUrl : undefined)
  }
}

export function githubDeployment(
  settings: DeploymentSettings,
  run: Pick<RunContext, 'sha' | 'runUrl'>,
  log: Log,
  options: DeploymentOptions = {}
): DeploymentRecorder {
  const api = openApi(settings, log, options)
  return api ? new Deployment(api, settings, run, log) : noDeployment
}

/** `success` when every host ended as the mode intends; the description names what happened. */
export function finalStatus(
  settings: Pick<Settings, 'mode' | 'releaseId'>,
  results: HostResult[]
): { state: 'success' | 'failure'; description: string } {
  const names = (keep: (r: HostResult) => boolean) =>
    results
      .filter(keep)
      .map(r => r.host)
      .join(', ')
  const all = names(() => true)
  const overall = overallStatus(results)
  if (settings.mode === 'rollback') {
    const restored = [...new Set(results.map(r => r.release).filter(Boolean))].join(', ')
    if (overall === 'rolled-back')
      return { state: 'success', description: `rolled back to ${restored} on ${all}` }
    const failed = names(r => r.status !== 'rolled-back')
    return {
      state: 'failure',
      description: `rollback to ${restored || '(none)'} failed on ${failed}`
    }
  }
  if (overall === 'deployed')
    return { state: 'success', description: `release ${settings.releaseId} serves on ${all}` }
  const parts = [
    ['rolled back on', names(r => r.status === 'rolled-back')],
    ['failed on', names(r => r.status === 'failed')],
    ['not started on', names(r => r.status === 'skipped')],
    ['deployed on', names(r => r.status === 'deployed')]
  ]
    .filter(([, hostList]) => hostList !== '')
    .map(([what, hostList]) => `${what} ${hostList}`)
  return { state: 'failure', description: `release ${settings.releaseId}: ${parts.join('; ')}` }
}

async function timeBound<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new CallTimeout())
    }, ms)
  })
  try {
    return await Promise.race([fn(controller.signal), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function explain(what: string, error: unknown, apiUrl: string, timeoutMs: number): string {
  const status = (error as { status?: unknown }).status
  const answered = (error as { response?: unknown }).response !== undefined
  const message = firstLine(error instanceof Error ? error.message : String(error))
  const tail = `Recording deployments needs ${PERMISSION} (or set github-deployment: false); the deploy is not affected.`
  if (error instanceof CallTimeout || (error as Error).name === 'AbortError')
    return `GitHub deployment not recorded: the GitHub API at ${apiUrl} did not answer within ${timeoutMs / 1000}s (${what}). ${tail}`
  if (!answered)
    return `GitHub deployment not recorded: the GitHub API at ${apiUrl} could not be reached (${what}: ${rootCause(error) ?? message}). ${tail}`
  if (status === 403 || status === 404 || status === 401)
    return `GitHub deployment not recorded: the token may not ${what} (HTTP ${String(status)}: ${message}). Add ${PERMISSION} to the job (or set github-deployment: false); the deploy is not affected.`
  return `GitHub deployment not recorded: could not ${what} (HTTP ${String(status)}: ${message}). ${tail}`
}

/** The innermost cause's message (fetch wraps e.g. `connect ECONNREFUSED` as `fetch failed`). */
function rootCause(error: unknown): string | undefined {
  let found: string | undefined
  let current = (error as { cause?: unknown }).cause
  for (let depth = 0; current && depth < 5; depth++) {
    const { message, code } = current as { message?: unknown; code?: unknown }
    if (typeof message === 'string' && message !== '') found = firstLine(message)
    else if (typeof code === 'string') found = code
    current = (current as { cause?: unknown }).cause
  }
  return found
}

function firstLine(text: string): string {
  const line = text.split('\n')[0]
  return line.length > 300 ? `${line.slice(0, 300)}…` : line
}

/** A description as GitHub keeps it: scrubbed of the run's secrets, then cut to its limit. */
function clip(description: string): string {
  const text = secrets.redact(description)
  return text.length > DESCRIPTION_MAX ? `${text.slice(0, DESCRIPTION_MAX - 1)}…` : text
}

/** The token is masked by the runner too; this keeps it out of local runs and tests. */
function redact(text: string, token: string): string {
  return token.length >= 4 ? text.split(token).join('***') : text
}
