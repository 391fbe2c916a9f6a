import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { ESLint } from 'eslint'

const eslint = new ESLint({ cwd: process.cwd() })

async function ruleIds(filePath: string, text: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath })
  return result.messages.map(m => m.ruleId ?? m.message)
}

describe('the layers of src/ (npm run lint)', () => {
  it('refuses an import from a layer above', async () => {
    expect(
      await ruleIds('src/core/x.ts', "import type { Settings } from '../modes/settings.js'\n")
    ).toContain('import-x/no-restricted-paths')
    expect(
      await ruleIds('src/transport/x.ts', "import type { Log } from '../host/evidence.js'\n")
    ).toContain('import-x/no-restricted-paths')
    expect(
      await ruleIds('src/host/x.ts', "import { run } from '../action/run-mode.js'\n")
    ).toContain('import-x/no-restricted-paths')
  }, 60_000)

  it('allows an import from a layer below', async () => {
    expect(
      await ruleIds(
        'src/host/x.ts',
        "import type { Log } from '../core/log.js'\nexport type L = Log\n"
      )
    ).toEqual([])
  }, 60_000)

  it('keeps the GitHub toolkit in the action layer', async () => {
    expect(await ruleIds('src/modes/x.ts', "import * as core from '@actions/core'\n")).toContain(
      'no-restricted-imports'
    )
  }, 60_000)

  it('finds an import cycle, type-only imports included', () => {
    const dir = mkdtempSync(path.join(process.cwd(), 'src', 'host', 'cycle-test-'))
    try {
      writeFileSync(path.join(dir, 'a.ts'), "import type { B } from './b.js'\nexport type A = B\n")
      writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a.js'\nexport type B = A\n")
      expect(() =>
        execFileSync('node', ['scripts/check-import-cycles.mjs'], { stdio: 'pipe' })
      ).toThrow(/import cycle: .*a\.ts <-> .*b\.ts/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(() => execFileSync('node', ['scripts/check-import-cycles.mjs'])).not.toThrow()
  })
})
