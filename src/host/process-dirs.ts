// How the deploy user reads which directory a service's processes work in:
// as their own user, through `sudo pwdx`, or not at all.
import { may, type Access } from './access.js'
import { workingDirectories } from './service-state.js'
import type { UnitInfo } from './gunicorn/unit-info.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

/** How the workers' directories are read: their own user, sudo pwdx, or not at all. */
export type DirAccess = 'own' | 'sudo' | 'none'

/**
 * Tries to read the master's directory the way verification will read the workers':
 * without sudo when the unit runs as the deploy user (which still fails when the
 * unit's Group= differs), else through `sudo pwdx` when allowed.
 */
export async function probeDirs(
  remote: RemoteHost,
  unit: UnitInfo,
  masterPid: number | undefined,
  access: Access
): Promise<{ via: DirAccess; masterDir?: string }> {
  const own = unit.user !== '' && unit.user === remote.target.user
  if (own && masterPid) {
    const dirs = await workingDirectories(remote, [masterPid], false)
    if (dirs.size > 0) return { via: 'own', masterDir: dirs.get(masterPid) }
  }
  if (may(access, 'pwdx')) {
    if (!masterPid) return { via: 'sudo' }
    const dirs = await workingDirectories(remote, [masterPid], true).catch(
      () => new Map<number, string>()
    )
    return { via: dirs.size > 0 ? 'sudo' : 'none', masterDir: dirs.get(masterPid) }
  }
  return { via: own && !masterPid ? 'own' : 'none' }
}
