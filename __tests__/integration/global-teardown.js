// Tears down every test host, even after failed tests.
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

export default async function globalTeardown() {
  const kit = path.resolve(import.meta.dirname, '..', '..', 'hostkit')
  execFileSync(path.join(kit, 'all-down.sh'), { stdio: 'inherit' })
}
