// Which release `current` is: only a target in release-path's releases/ counts, by where
// it resolves; anything else is a current that is not a release. The read runs with
// this machine's sh on real symlinks.
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  parseCurrent,
  readCurrent,
  readCurrentRelease,
  ReleaseLayout
} from '../../src/host/release-layout.js'
import { runLocally, ScriptedRemote } from '../../__fixtures__/scripted-remote.js'

const dir = mkdtempSync(join(tmpdir(), 'zdd-current-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A release-path under `dir` with releases/v1, current pointing at `target`. */
function releasePath(name: string, target: string | undefined): ReleaseLayout {
  const root = join(dir, name)
  mkdirSync(join(root, 'releases', 'v1'), { recursive: true })
  if (target !== undefined) symlinkSync(target.replace('$ROOT', root), join(root, 'current'))
  return new ReleaseLayout(root)
}

const read = (layout: ReleaseLayout) =>
  readCurrent(new ScriptedRemote([{ when: /./, reply: c => runLocally(c) }]), layout)

describe('readCurrent', () => {
  it('counts releases/<id>, relative or absolute', async () => {
    expect(await read(releasePath('rel', 'releases/v1'))).toEqual({ kind: 'release', id: 'v1' })
    expect(await read(releasePath('rel-dot', './releases/v1/'))).toEqual({
      kind: 'release',
      id: 'v1'
    })
    expect(await read(releasePath('abs', '$ROOT/releases/v1'))).toEqual({
      kind: 'release',
      id: 'v1'
    })
  })

  it('counts a release through a release-path that is itself a symlink', async () => {
    const real = releasePath('real', undefined)
    symlinkSync(real.root, join(dir, 'linked'))
    const linked = new ReleaseLayout(join(dir, 'linked'))
    symlinkSync(`${real.root}/releases/v1`, join(real.root, 'current')) // the physical path
    expect(await read(linked)).toEqual({ kind: 'release', id: 'v1' })
  })

  // Issue 18: current -> /home/app/app was taken for a release called app.
  it('does not take a directory elsewhere for a release, whatever its last name', async () => {
    mkdirSync(join(dir, 'home', 'app', 'app'), { recursive: true })
    const target = join(dir, 'home', 'app', 'app')
    const handMade = releasePath('hand-made', target)
    expect(await read(handMade)).toEqual({ kind: 'other', target })
    const remote = new ScriptedRemote([{ when: /./, reply: c => runLocally(c) }])
    expect(await readCurrentRelease(remote, handMade)).toBeUndefined() // was 'app'
    // another release-path's release is not one of this one's
    expect(await read(releasePath('foreign', join(dir, 'rel', 'releases', 'v1')))).toEqual({
      kind: 'other',
      target: join(dir, 'rel', 'releases', 'v1')
    })
  })

  it('reads no current as none', async () => {
    expect(await read(releasePath('empty', undefined))).toEqual({ kind: 'none' })
    expect(parseCurrent('')).toEqual({ kind: 'none' })
    expect(parseCurrent('releases/..\n/x/releases\n/x')).toEqual({
      kind: 'other',
      target: 'releases/..'
    })
  })
})
