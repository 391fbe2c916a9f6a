// The upload that runs while the lock is taken writes only into its own directory;
// placed under the lock, it touches nothing when the release id is already on the
// host, and compares requirements.txt with the current release's.
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import type { Readable } from 'node:stream'
import { ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'
import type { Log } from '../../src/core/log.js'
import type { Settings } from '../../src/modes/settings.js'
import type { ShellLine } from '../../src/transport/shell-quote.js'
import type { ExecOptions, ExecResult } from '../../src/transport/ssh-connection.js'
import { ReleaseLayout } from '../../src/host/release-layout.js'
import { ReleaseExistsError } from '../../src/host/release-layout.js'
import { placeUpload, uploadToIncoming } from '../../src/modes/prepare-release.js'
import { ownedPaths } from '../../src/modes/deploy.js'

const dir = mkdtempSync(path.join(tmpdir(), 'zdd-upload-'))
const archivePath = path.join(dir, 'release.tar.gz')
writeFileSync(archivePath, 'not really gzip: the scripted host never unpacks it')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const log: Log = { info: () => {}, warning: () => {}, error: () => {}, group: (_n, fn) => fn() }
const settings = { releaseId: 'v2', sharedPaths: [], service: 'myapp' } as unknown as Settings
const layout = new ReleaseLayout('/srv/myapp')

/** The service's user, group and user's group, then the deploy user, its group and all its groups. */
const ACCESS = 'www-data\nwww-data\nwww-data\ndeploy\ndeploy\ndeploy adm www-data\n'

/** A scripted host that reads what a command is given on stdin (the archive) to its end. */
class ReadingRemote extends ScriptedRemote {
  async exec(command: ShellLine, options?: ExecOptions): Promise<ExecResult> {
    const stdin = options?.stdin as Readable | undefined
    if (stdin && typeof stdin !== 'string')
      await new Promise((resolve, reject) => stdin.on('error', reject).on('end', resolve).resume())
    return super.exec(command)
  }
}

const INCOMING = '/srv/myapp/releases/.incoming-v2-abc123'

/** A scripted host: releases/v2 exists when `exists`; the requirements.txt hashes as given. */
function host(exists: boolean, hashes: { next?: string; current?: string }): ScriptedRemote {
  const rules: Rule[] = [
    // the service's user and group, the deploy user and its groups
    { when: /^sh -c 'u=\$\(systemctl /, reply: { stdout: ACCESS } },
    { when: /^mkdir -p \/srv\/myapp\/releases\/\.incoming-v2-abc123 && /, reply: {} },
    { when: /^sh -c .*mv -T/, reply: { code: exists ? 3 : 0 } },
    {
      when: /sha256sum \/srv\/myapp\/releases\/v2\/requirements\.txt/,
      reply: { stdout: hashes.next ? `${hashes.next}  requirements.txt\n` : '' }
    },
    {
      when: /sha256sum \/srv\/myapp\/current\/requirements\.txt/,
      reply: { stdout: hashes.current ? `${hashes.current}  requirements.txt\n` : '' }
    }
  ]
  return new ReadingRemote(rules)
}

const context = (remote: ScriptedRemote) => ({ remote, settings, layout, log, archivePath })

describe('the upload before the lock, and its placing under the lock', () => {
  it('uploads only into its own incoming directory, readable by the service group', async () => {
    const remote = host(false, {})
    await expect(uploadToIncoming(context(remote), INCOMING)).resolves.toEqual({
      mode: 'group',
      group: 'www-data'
    })
    // who may read it is read first, then the archive is unpacked with those rights
    expect(remote.commands).toHaveLength(2)
    expect(remote.commands[0]).toMatch(/^sh -c 'u=\$\(systemctl /)
    expect(remote.commands[1]).toBe(
      `mkdir -p ${INCOMING} && chgrp www-data ${INCOMING} && chmod 2750 ${INCOMING} && umask 027 && tar --no-same-permissions --no-same-owner -xzf - -C ${INCOMING}`
    )
    expect(remote.commands.some(c => c.includes('/srv/myapp/releases/v2'))).toBe(false)
  })

  it('places nothing and removes nothing when the release id is already on the host', async () => {
    const remote = host(true, {})
    await expect(placeUpload(context(remote), INCOMING)).rejects.toThrow(ReleaseExistsError)
    await expect(placeUpload(context(remote), INCOMING)).rejects.toThrow(
      'release v2 already exists in /srv/myapp/releases; give this deploy another release-id'
    )
    expect(remote.commands.some(c => /rm -rf|sha256sum/.test(c))).toBe(false)
  })

  it('renames the upload to releases/<id> only when that id is new, then compares requirements.txt', async () => {
    const remote = host(false, { next: 'aaa', current: 'aaa' })
    await expect(placeUpload(context(remote), INCOMING)).resolves.toEqual({
      releaseDir: '/srv/myapp/releases/v2',
      requirements: 'unchanged'
    })
    expect(remote.commands[0]).toContain(
      `if [ -e "$2" ] || [ -L "$2" ]; then exit 3; fi; exec mv -T "$1" "$2"' sh ${INCOMING} /srv/myapp/releases/v2`
    )
  })

  it('tells a changed requirements.txt and a release without one', async () => {
    const place = (h: ScriptedRemote) => placeUpload(context(h), INCOMING)
    expect((await place(host(false, { next: 'bbb', current: 'aaa' }))).requirements).toBe('changed')
    expect((await place(host(false, { next: 'bbb' }))).requirements).toBe('changed')
    expect((await place(host(false, { current: 'aaa' }))).requirements).toBe('absent')
  })
})

describe('what a failed deploy removes, by the phase it reached', () => {
  const paths = { release: '/srv/myapp/releases/v2', incoming: INCOMING }
  it('removes only its own upload before it placed the release (a release of that id is never touched)', () => {
    expect(ownedPaths('started', paths)).toEqual([INCOMING])
    expect(ownedPaths('locked', paths)).toEqual([INCOMING])
  })
  it('removes the release it placed, and nothing once the cutover ran', () => {
    expect(ownedPaths('placed', paths)).toEqual([paths.release, INCOMING])
    expect(ownedPaths('prepared', paths)).toEqual([paths.release, INCOMING])
    expect(ownedPaths('switched', paths)).toEqual([])
    expect(ownedPaths('finished', paths)).toEqual([])
  })
})
