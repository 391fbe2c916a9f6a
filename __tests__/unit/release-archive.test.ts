import { afterEach, describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import {
  createArchive,
  describeArchive,
  type ArchiveOptions
} from '../../src/modes/release-archive.js'
import { METADATA_FILE } from '../../src/core/release-id.js'

const METADATA = {
  id: 'r1',
  sha: 'abc',
  actor: 'me',
  run: 'https://run',
  time: '2026-01-01T00:00:00Z'
}
const dirs: string[] = []

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'zdd-archive-test-'))
  dirs.push(dir)
  return dir
}

/** A source tree: `files` maps relative paths to contents (a trailing / makes a directory). */
function sourceTree(files: Record<string, string>): string {
  const root = tempDir()
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, rel)
    if (rel.endsWith('/')) {
      mkdirSync(full, { recursive: true })
      continue
    }
    mkdirSync(path.dirname(full), { recursive: true })
    writeFileSync(full, content)
  }
  return root
}

/** Packs `source` and lists the archive with tar, as the server will unpack it. */
async function packedNames(source: string, options: ArchiveOptions = {}) {
  const out = path.join(tempDir(), 'release.tar.gz')
  const stats = await createArchive(source, METADATA, out, options)
  const names = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' })
    .split('\n')
    .filter(n => n !== '')
    .map(n => n.replace(/^\.\//, ''))
    .filter(n => n !== '')
  return { names, stats, out }
}

const APP = {
  'app.py': 'app = 1\n',
  'wsgi.py': 'from app import app\n',
  'requirements.txt': 'flask\n',
  'pkg/__init__.py': '',
  'pkg/views.py': 'x = 1\n',
  'migrations/versions/0001_init.py': 'rev = 1\n'
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('createArchive', () => {
  it('leaves out version control, virtualenvs, tool caches and bytecode by default', async () => {
    const source = sourceTree({
      ...APP,
      '.git/config': '[http] extraheader = AUTHORIZATION: basic secret\n',
      '.venv/bin/python': '#!',
      'venv/lib/site.py': '',
      '.tox/py311/log': '',
      '.pytest_cache/v/cache': '',
      '.mypy_cache/3.11/x.json': '',
      'pkg/__pycache__/views.cpython-311.pyc': '',
      'legacy.pyc': '',
      'node_modules/left-pad/index.js': '',
      [METADATA_FILE]: '{"id":"forged"}'
    })
    const { names, stats } = await packedNames(source)
    expect(names.sort()).toEqual(
      [
        METADATA_FILE,
        'app.py',
        'migrations/',
        'migrations/versions/',
        'migrations/versions/0001_init.py',
        'pkg/',
        'pkg/__init__.py',
        'pkg/views.py',
        'requirements.txt',
        'wsgi.py'
      ].sort()
    )
    expect(stats.files).toBe(7)
    expect(stats.excluded).toEqual(
      expect.arrayContaining([
        '.git/',
        '.venv/',
        'venv/',
        '.tox/',
        'pkg/__pycache__/',
        'legacy.pyc'
      ])
    )
  })

  // Issue 18: google-github-actions/auth writes gha-creds-<hex>.json into the workspace
  // (get-gke-credentials a gha-kubeconfig-<hex>); they were uploaded with the release.
  it('leaves out the credential files that authentication actions write into the workspace', async () => {
    const source = sourceTree({
      ...APP,
      'gha-creds-ef801c3bb35b52e5.json': '{"type":"external_account"}',
      'gha-kubeconfig-0123456789abcdef': 'users: [{user: {token: secret}}]',
      'sub/gha-creds-0123456789abcdef.json': '{}'
    })
    const { names, stats } = await packedNames(source)
    expect(names.filter(n => n.includes('gha-'))).toEqual([])
    expect(stats.excluded).toEqual(
      expect.arrayContaining([
        'gha-creds-ef801c3bb35b52e5.json',
        'gha-kubeconfig-0123456789abcdef',
        'sub/gha-creds-0123456789abcdef.json'
      ])
    )
    // re-included with ! in exclude (or .deployignore), as every default
    const again = await packedNames(source, { exclude: ['!gha-creds-*.json'] })
    expect(again.names).toContain('gha-creds-ef801c3bb35b52e5.json')
    expect(again.names).not.toContain('gha-kubeconfig-0123456789abcdef')
  })

  it('writes the metadata file of this release, not one found in the source', async () => {
    const source = sourceTree({ ...APP, [METADATA_FILE]: '{"id":"forged"}' })
    const { out } = await packedNames(source)
    const meta = execFileSync('tar', ['-xzOf', out, METADATA_FILE], { encoding: 'utf8' })
    expect(JSON.parse(meta)).toEqual(METADATA)
  })

  it('follows .deployignore in gitignore syntax, negation included, and does not upload it', async () => {
    const source = sourceTree({
      ...APP,
      '.deployignore': [
        '# test data and docs stay behind',
        'tests/',
        '*.md',
        '!CHANGELOG.md',
        '/docs',
        '!venv/'
      ].join('\n'),
      'tests/test_app.py': '',
      'README.md': '',
      'CHANGELOG.md': '',
      'docs/index.rst': '',
      'pkg/docs/help.txt': '',
      'venv/vendored.py': ''
    })
    const { names } = await packedNames(source)
    expect(names).toEqual(
      expect.arrayContaining(['CHANGELOG.md', 'pkg/docs/help.txt', 'venv/vendored.py'])
    )
    for (const gone of ['tests/', 'tests/test_app.py', 'README.md', 'docs/', '.deployignore'])
      expect(names).not.toContain(gone)
  })

  it('applies the exclude input after .deployignore, so it can exclude or re-include', async () => {
    const source = sourceTree({
      ...APP,
      '.deployignore': 'instance/\n',
      'instance/config.py': '',
      'scripts/seed.py': '',
      'local.env': ''
    })
    const { names } = await packedNames(source, {
      exclude: ['scripts/', '*.env', '!instance/']
    })
    expect(names).toContain('instance/config.py')
    expect(names).not.toContain('scripts/seed.py')
    expect(names).not.toContain('local.env')
  })

  it('never uploads .git, even when the patterns re-include it', async () => {
    const source = sourceTree({ ...APP, '.git/config': 'token', '.deployignore': '!.git\n' })
    const { names } = await packedNames(source, { exclude: ['!.git/', '!.git'] })
    expect(names.filter(n => n.startsWith('.git'))).toEqual([])
  })

  it('keeps symlinks as links and file names that look like options', async () => {
    const source = sourceTree({ ...APP, '--help': 'not an option', ' spaced name.txt': '' })
    symlinkSync('app.py', path.join(source, 'alias.py'))
    const { names, out } = await packedNames(source)
    expect(names).toEqual(expect.arrayContaining(['--help', ' spaced name.txt', 'alias.py']))
    const listing = execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' })
    expect(listing).toMatch(/alias\.py -> app\.py/)
  })

  it('makes every entry readable, and none writable, by the service user', async () => {
    const source = sourceTree({ ...APP, 'private/key.txt': '' })
    chmodSync(path.join(source, 'private'), 0o700)
    chmodSync(path.join(source, 'private/key.txt'), 0o666)
    const { out } = await packedNames(source)
    const modes = execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' })
      .split('\n')
      .filter(l => l !== '')
      .map(l => l.split(/\s+/)[0])
    expect(modes.length).toBeGreaterThan(8)
    for (const mode of modes) expect(mode).toMatch(/^[-dl]r[-w][-x]r-[-x]r-[-x]$/)
  })

  it('fails clearly when the exclusions leave nothing to upload', async () => {
    const source = sourceTree(APP)
    await expect(packedNames(source, { exclude: ['*'] })).rejects.toThrow(
      /no file is left to upload/
    )
  })

  it('reports size, file count and what was left out', async () => {
    const source = sourceTree({ ...APP, '.venv/bin/python': '' })
    const { stats, out } = await packedNames(source)
    expect(stats.bytes).toBe(Number(execFileSync('stat', ['-c', '%s', out], { encoding: 'utf8' })))
    expect(describeArchive(stats)).toBe(`7 files, 1 KiB packed; left out: .venv/`)
  })
})
