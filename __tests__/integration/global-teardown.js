// Tears down every test host, even after failed tests.
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

export default async function globalTeardown() {
  const kit = path.resolve(import.meta.dirname, '..', '..', 'hostkit')
  // ZDD_KEEP_OTHER_HOSTS=1: a developer runs one file while other hosts are in use; each
  // test file still removes its own hosts in afterAll.
  if (!process.env.ZDD_KEEP_OTHER_HOSTS)
    execFileSync(path.join(kit, 'all-down.sh'), { stdio: 'inherit' })
}
