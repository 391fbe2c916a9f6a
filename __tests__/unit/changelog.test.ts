// scripts/changelog.mjs, which the release workflow runs: the Unreleased section becomes the
// version, a new empty Unreleased goes above it, and `notes` prints the version's section.
import { describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'

const SCRIPT = path.resolve(import.meta.dirname, '..', '..', 'scripts', 'changelog.mjs')
const LOG = `# Changelog

Intro.

## Unreleased

### Added

- adopt.sh converts a running server.

## 1.0.0 - 2026-12-01

### Added

- The action.
`

function changelog(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'zdd-changelog-')), 'CHANGELOG.md')
  writeFileSync(file, text)
  return file
}

function run(...args: string[]) {
  const done = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' })
  return { code: done.status, out: done.stdout, err: done.stderr }
}

describe('scripts/changelog.mjs', () => {
  it('turns Unreleased into the version, with a new empty Unreleased above it', () => {
    const file = changelog(LOG)
    expect(run('release', '1.1.0', '2026-12-05', file).code).toBe(0)
    const text = readFileSync(file, 'utf8')
    expect(text).toContain(
      '## Unreleased\n\nNothing yet.\n\n## 1.1.0 - 2026-12-05\n\n### Added\n\n- adopt.sh converts'
    )
    expect(text).toContain('## 1.0.0 - 2026-12-01\n\n### Added\n\n- The action.\n')
    expect(run('notes', '1.1.0', file)).toEqual({
      code: 0,
      out: '### Added\n\n- adopt.sh converts a running server.\n',
      err: ''
    })
    expect(run('notes', '1.0.0', file).out).toBe('### Added\n\n- The action.\n')
  })

  it('refuses a release with nothing in Unreleased, a version twice, or a bad version', () => {
    const file = changelog(LOG)
    expect(run('release', '1.1.0', '2026-12-05', file).code).toBe(0)
    expect(run('release', '1.2.0', '2026-12-06', file)).toMatchObject({
      code: 1,
      err: expect.stringContaining('lists no change')
    })
    const again = changelog(
      LOG.replace('## Unreleased', '## Unreleased\n\n- x\n\n## 1.1.0 - 2026-12-02')
    )
    expect(run('release', '1.1.0', '2026-12-05', again).err).toContain(
      '1.1.0 has a section already'
    )
    expect(run('release', 'v1.1', '2026-12-05', changelog(LOG)).err).toContain('must be X.Y.Z')
    expect(run('notes', '9.9.9', changelog(LOG)).err).toContain('no section for 9.9.9')
  })

  it("finds the repository's own CHANGELOG ready for a release", () => {
    const text = readFileSync(path.resolve(import.meta.dirname, '..', '..', 'CHANGELOG.md'), 'utf8')
    expect(text).toMatch(/\n## Unreleased\n/)
  })
})
