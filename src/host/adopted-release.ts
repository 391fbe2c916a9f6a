// A release that predates the action: examples/server/adopt.sh copied it from the code a
// server ran before it was converted, and marked it in its metadata file. Its app may have
// no health route, and none that names a release, so it is proven on the path that
// answered 2xx when it was adopted (by a 2xx answer there and by the workers' directory),
// and the traffic probe asks that path while it takes part in a cutover.
import { METADATA_FILE } from '../core/release-id.js'
import { withPath, type HttpTarget } from '../transport/http-target.js'
import { optional } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { Finding } from '../core/host-result.js'
import type { Log } from '../core/log.js'
import type { CutoverPlan } from './cutover/types.js'

export interface Adopted {
  /** The path that answered 2xx on the running app when adopt.sh converted the server. */
  healthPath: string
  /** The directory the app ran from before. */
  from?: string
}

const PATH_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/

/** The adopt marker of a release's metadata file (`"adopted": {...}`), or undefined. */
export function parseAdopted(metadata: string): Adopted | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(metadata)
  } catch {
    return undefined
  }
  if (!parsed || typeof parsed !== 'object' || !('adopted' in parsed)) return undefined
  const adopted = (parsed as { adopted: unknown }).adopted
  if (!adopted || typeof adopted !== 'object') return undefined
  const { healthPath, from } = adopted as { healthPath?: unknown; from?: unknown }
  return {
    healthPath: typeof healthPath === 'string' && PATH_RE.test(healthPath) ? healthPath : '/',
    from: typeof from === 'string' ? from : undefined
  }
}

/** Reads the adopt marker of the release in `releaseDir` (undefined: the action deployed it). */
export async function readAdopted(
  remote: RemoteHost,
  releaseDir: string | undefined
): Promise<Adopted | undefined> {
  if (!releaseDir) return undefined
  const result = await remote.exec(optional(['cat', `${releaseDir}/${METADATA_FILE}`]))
  return parseAdopted(result.stdout)
}

/**
 * What proves an adopted release: every URL asks the path that answered when it was adopted,
 * and no answer is expected to name the release (its app does not know the action).
 */
export function adoptedPlan(plan: CutoverPlan, adopted: Adopted): CutoverPlan {
  return {
    ...plan,
    urls: plan.urls.map(url => withPath(url, adopted.healthPath)),
    healthExpect: undefined
  }
}

/** The traffic probe's URL while an adopted release takes part in a cutover (either side). */
export function probeFor(
  url: HttpTarget | undefined,
  ...sides: (Adopted | undefined)[]
): HttpTarget | undefined {
  const adopted = sides.find(side => side !== undefined)
  return url && adopted ? withPath(url, adopted.healthPath) : url
}

/**
 * A cutover to `plan` from the release in `fromDir`: the plan that proves it and the probe's
 * URL, each asking an adopted release's own path when one takes part.
 */
export async function withAdopted(
  remote: RemoteHost,
  plan: CutoverPlan,
  fromDir: string | undefined,
  probeUrl: HttpTarget | undefined,
  log: Pick<Log, 'info'>
): Promise<{ plan: CutoverPlan; probeUrl?: HttpTarget; adopted?: Adopted }> {
  const [to, from] = await Promise.all([
    readAdopted(remote, plan.releaseDir),
    readAdopted(remote, fromDir)
  ])
  if (to)
    log.info(
      `${plan.release} predates the action (adopt.sh made it from ${to.from ?? 'the code that ran'}): it is proven by its workers' directory and 2xx answers at ${to.healthPath}, not by a release-naming health answer`
    )
  return {
    plan: to ? adoptedPlan(plan, to) : plan,
    probeUrl: probeFor(probeUrl, to, from),
    adopted: to ?? from
  }
}

/**
 * mode: check on a server whose current release was adopted: health-url does not answer 2xx
 * (the app has no such route yet), but the adopted release's own path does.
 */
export function adoptedHealth(
  url: HttpTarget,
  status: number,
  own: HttpTarget,
  ownStatus: number
): Finding {
  return {
    severity: 'ok',
    check: 'health',
    finding: `${url.text} answers ${status}, but the current release predates the action (adopt.sh made it) and ${own.text} answers ${ownStatus}: a rollback to it is proven there. The releases you deploy must answer 2xx at ${url.path}`,
    fix: ''
  }
}
