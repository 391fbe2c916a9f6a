// Builds (or restores from cache) the test-host root filesystem once per run.
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

export default async function globalSetup() {
  const kit = path.resolve(import.meta.dirname, '..', '..', 'hostkit')
  execFileSync(path.join(kit, 'all-down.sh'), { stdio: 'inherit' })
  execFileSync(path.join(kit, 'build-rootfs.sh'), { stdio: ['ignore', 'ignore', 'inherit'] })
}
