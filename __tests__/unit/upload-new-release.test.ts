// The upload that runs beside preflight: it writes nothing when the release id is
// already on the host, and compares requirements.txt with the current release's.
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
import { ReleaseExistsError, uploadNewRelease } from '../../src/modes/prepare-release.js'

const dir = mkdtempSync(path.join(tmpdir(), 'zdd-upload-'))
const archivePath = path.join(dir, 'release.tar.gz')
writeFileSync(archivePath, 'not really gzip: the scripted host never unpacks it')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const log: Log = { info: () => {}, warning: () => {}, error: () => {}, group: (_n, fn) => fn() }
const settings = { releaseId: 'v2', sharedPaths: [], service: 'myapp' } as unknown as Settings
const layout = new ReleaseLayout('/srv/myapp')

/** `find releases/ ...` output listing these release ids (their metadata files). */
const listing = (...ids: string[]) => ids.map((id, i) => `${100 + i}.0 ${id}\n`).join('')

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

function host(ids: string[], hashes: { next?: string; current?: string }): ScriptedRemote {
  const rules: Rule[] = [
    { when: /^find \/srv\/myapp\/releases /, reply: { stdout: listing(...ids) } },
    // the service's user and group, the deploy user and its groups
    { when: /^sh -c 'u=\$\(systemctl /, reply: { stdout: ACCESS } },
    { when: /^rm -rf \/srv\/myapp\/releases\/\.incoming-v2 && /, reply: {} },
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

const upload = (remote: ScriptedRemote) =>
  uploadNewRelease({ remote, settings, layout, log, archivePath })

describe('the upload beside preflight', () => {
  it('writes nothing when the release id is already on the host', async () => {
    const remote = host(['v1', 'v2'], {})
    await expect(upload(remote)).rejects.toThrow(ReleaseExistsError)
    await expect(upload(remote)).rejects.toThrow(
      'release v2 already exists in /srv/myapp/releases; give this deploy another release-id'
    )
    expect(remote.commands.every(c => /^(find|sh -c 'u=)/.test(c))).toBe(true)
  })

  it('uploads into a new id through its incoming directory, then compares requirements.txt', async () => {
    const remote = host(['v1'], { next: 'aaa', current: 'aaa' })
    await expect(upload(remote)).resolves.toEqual({
      releaseDir: '/srv/myapp/releases/v2',
      requirements: 'unchanged'
    })
    const unpack = remote.commands.find(c => c.startsWith('rm -rf '))
    expect(unpack).toContain('mv -T /srv/myapp/releases/.incoming-v2 /srv/myapp/releases/v2')
    // readable by the service's group, not by other users
    expect(unpack).toContain(
      'chgrp www-data /srv/myapp/releases/.incoming-v2 && chmod 2750 /srv/myapp/releases/.incoming-v2 && umask 027 && tar --no-same-permissions --no-same-owner -xzf -'
    )
  })

  it('tells a changed requirements.txt and a release without one', async () => {
    expect((await upload(host(['v1'], { next: 'bbb', current: 'aaa' }))).requirements).toBe(
      'changed'
    )
    expect((await upload(host([], { next: 'bbb' }))).requirements).toBe('changed')
    expect((await upload(host(['v1'], { current: 'aaa' }))).requirements).toBe('absent')
  })
})
