// Stale static files are a failure like stale code: when Nginx serves the release's
// static files itself (alias into current/), the deploy compares one of the new
// release's files, fetched through Nginx after the switch, with the file on disk.
import { describe, expect, it } from '@jest/globals'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  annotations,
  appCopy,
  fetchNginx,
  inputsFor,
  rootSh,
  runAction,
  servedRelease
} from './kit.js'
import { withHost } from './with-host.js'

const styled = (css: string) =>
  appCopy(d => writeFileSync(path.join(d, 'static', 'style.css'), css))

describe('static files through Nginx', () => {
  const host = withHost('stat1', 'fixed')

  it('proves the new release static file is what Nginx serves', async () => {
    const run = await runAction(
      inputsFor(host, { source: styled('body { color: teal; }\n'), 'release-id': 'css1' })
    )
    expect(run.outputs.status).toBe('deployed')
    expect(run.stdout).toContain("/static/style.css through Nginx matches the new release's")
    expect((await fetchNginx(host, '/static/style.css')).body).toContain('teal')
  })

  it('rolls back when Nginx serves the static files from somewhere else than current', async () => {
    // A leftover rule (say, from a hotfix) pins CSS to the first release's directory: a regex
    // location wins over the /static/ prefix, so the old file keeps being served.
    await rootSh(
      host,
      "sed -i 's|server_name _;|server_name _;\\n    location ~* \\\\.css$ { root /srv/myapp/releases/css1; }|' /etc/nginx/sites-available/myapp && nginx -t && systemctl reload nginx"
    )
    expect((await fetchNginx(host, '/static/style.css')).body).toContain('teal')
    const run = await runAction(
      inputsFor(host, { source: styled('body { color: plum; }\n'), 'release-id': 'css2' })
    )
    expect(run.outputs.status).toBe('rolled-back')
    expect(annotations(run)).toContain('stale static files')
    expect(await servedRelease(host)).toBe('css1')
  })
})
