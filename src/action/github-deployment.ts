// The run's GitHub deployment and its statuses, the one module that calls the
// GitHub API. It is bookkeeping: nothing here throws or fails a deploy, every
// call is time-bound, and the first failed call gives one warning (naming the
// permission when that is the cause) and ends the bookkeeping for the run.
import * as github from '@actions/github'
import type { HostResult } from './host-result.js'
import type { Log } from './log.js'
import { overallStatus } from './report.js'
import type { RunContext } from './run-context.js'
import type { Settings } from './settings.js'

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

export function githubDeployment(
  settings: DeploymentSettings,
  run: Pick<RunContext, 'sha' | 'runUrl'>,
  log: Log,
  options: DeploymentOptions = {}
): DeploymentRecorder {
  if (!settings.githubDeployment || settings.mode === 'check') return noDeployment
  const env = options.env ?? process.env
  const token = settings.githubToken
  if (token === '') {
    log.info('GitHub deployment not recorded: github-token is empty')
    return noDeployment
  }
  const [owner, repo, extra] = (env.GITHUB_REPOSITORY ?? '').split('/')
  if (!owner || !repo || extra !== undefined) {
    log.info('GitHub deployment not recorded: GITHUB_REPOSITORY does not name owner/repository')
    return noDeployment
  }
  const apiUrl = (env.GITHUB_API_URL || 'https://api.github.com').replace(/\/+$/, '')
  const timeoutMs = options.timeoutMs ?? 5000
  // @actions/github reads GITHUB_API_URL when it is first imported; pass it explicitly so the
  // value at run time is the one used.
  const octokit: Octokit = github.getOctokit(token, {
    baseUrl: apiUrl,
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined
    }
  })
  const hosts = settings.targets.map(t => t.label)
  const logUrl = /^https?:\/\//.test(run.runUrl) ? run.runUrl : undefined

  let chain: Promise<void> = Promise.resolve()
  let deploymentId: number | undefined
  let started = false
  let stopped = false

  /** Runs one API call; the first failure warns once and stops every later call. */
  const call = async <T>(
    what: string,
    fn: (signal: AbortSignal) => Promise<T>
  ): Promise<T | undefined> => {
    if (stopped) return undefined
    try {
      return await timeBound(fn, timeoutMs)
    } catch (error) {
      stopped = true
      log.warning(redact(explain(what, error, apiUrl, timeoutMs), token))
      return undefined
    }
  }

  const setStatus = async (state: State, description: string, environmentUrl?: string) => {
    if (deploymentId === undefined) return
    const id = deploymentId
    await call(`set the deployment ${id} to ${state}`, signal =>
      octokit.rest.repos.createDeploymentStatus({
        owner,
        repo,
        deployment_id: id,
        state,
        description: clip(description),
        ...(logUrl ? { log_url: logUrl } : {}),
        ...(environmentUrl ? { environment_url: environmentUrl } : {}),
        request: { signal }
      })
    )
  }

  const create = async (ref: string, release: string, description: string) => {
    const response = await call(
      `create a deployment of ${ref} in ${settings.environment}`,
      signal =>
        octokit.rest.repos.createDeployment({
          owner,
          repo,
          ref,
          environment: settings.environment,
          description: clip(description),
          payload: { release, hosts, mode: settings.mode, run: run.runUrl },
          required_contexts: [],
          auto_merge: false,
          request: { signal }
        })
    )
    if (!response) return
    const data = response.data as { id?: unknown; message?: unknown }
    if (typeof data.id !== 'number') {
      stopped = true
      log.warning(
        redact(
          `GitHub deployment not recorded: the API created none (HTTP ${response.status}${typeof data.message === 'string' ? `: ${data.message}` : ''}). The deploy is not affected.`,
          token
        )
      )
      return
    }
    deploymentId = data.id
    log.info(`GitHub deployment ${data.id} of ${ref.slice(0, 12)} in ${settings.environment}`)
  }

  const start = (ref: string, release: string, what: string) => {
    started = true
    chain = chain.then(async () => {
      await create(ref, release, `${what} on ${hosts.join(', ')}`)
      await setStatus('in_progress', `${what}: ${hosts.length} host(s)`)
    })
  }

  return {
    begin() {
      if (settings.mode !== 'deploy' || started) return
      if (run.sha === '') {
        log.info('GitHub deployment not recorded: the commit sha of this run is unknown')
        started = true
        return
      }
      start(run.sha, settings.releaseId, `deploy ${settings.releaseId}`)
    },
    hostDone(result) {
      if (settings.mode === 'rollback' && !started && result.sha && result.release)
        start(result.sha, result.release, `rollback to ${result.release}`)
      return result
    },
    async finish(results, environmentUrl) {
      await chain
      if (!started && settings.mode === 'rollback')
        log.info(
          'GitHub deployment not recorded: no host restored a release whose commit the release log names'
        )
      const { state, description } = finalStatus(settings, results)
      await setStatus(state, description, state === 'success' ? environmentUrl : undefined)
    }
  }
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

function clip(text: string): string {
  return text.length > DESCRIPTION_MAX ? `${text.slice(0, DESCRIPTION_MAX - 1)}…` : text
}

/** The token is masked by the runner too; this keeps it out of local runs and tests. */
function redact(text: string, token: string): string {
  return token.length >= 4 ? text.split(token).join('***') : text
}
