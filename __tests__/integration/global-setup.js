// Builds (or restores from cache) the test-host root filesystems once per run.
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

export default async function globalSetup() {
  const kit = path.resolve(import.meta.dirname, '..', '..', 'hostkit')
  // ZDD_KEEP_OTHER_HOSTS=1: a developer runs one file while other hosts are in use; each
  // test file still removes its own hosts in afterAll.
  if (!process.env.ZDD_KEEP_OTHER_HOSTS)
    execFileSync(path.join(kit, 'all-down.sh'), { stdio: 'inherit' })
  // Debian 12, Debian 13 and Debian sid images (cached: built once per machine, one to
  // several minutes each; restored in about a second afterwards).
  for (const suite of ['bookworm', 'trixie', 'sid'])
    execFileSync(path.join(kit, 'build-rootfs.sh'), ['--suite', suite], {
      stdio: ['ignore', 'ignore', 'inherit']
    })
}
