// Whether Nginx serves before the switch: only then does a gateway error from
// Nginx after the switch say something about the new release (a site already
// down through Nginx is not made worse, and a deploy may be its fix).
import { httpGet } from '../transport/http-over-ssh.js'
import type { RemoteHost } from '../transport/ssh-connection.js'
import type { ServiceSnapshot } from '../host/preflight.js'
import { nginxTarget } from '../host/verification-urls.js'
import type { Settings } from './settings.js'

/** One request through Nginx: true when it answers without a gateway error (502/503/504). */
export async function nginxAnswers(
  remote: RemoteHost,
  settings: Settings,
  snap: ServiceSnapshot
): Promise<boolean> {
  if (snap.cold) return false
  try {
    const response = await httpGet(remote, nginxTarget(settings, snap.nginx), 5000)
    return ![502, 503, 504].includes(response.status)
  } catch {
    return false
  }
}
