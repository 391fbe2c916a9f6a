import { describe, expect, it } from '@jest/globals'
import { crashedInLogging } from '../../src/host/gunicorn/logging-crash.js'

// As journalctl -o short-iso prints Gunicorn 20.1's crash (Debian 12) during a reload.
const CRASH = (pid: number) =>
  [
    `2026-12-05T20:14:27+0000 web gunicorn[${pid}]: [2026-12-05 20:14:27 +0000] [${pid}] [WARNING] Worker with pid 42 was terminated due to signal 15`,
    `2026-12-05T20:14:27+0000 web gunicorn[${pid}]: --- Logging error ---`,
    `2026-12-05T20:14:27+0000 web gunicorn[${pid}]: RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>`,
    `2026-12-05T20:14:27+0000 web gunicorn[${pid}]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 242, in handle_chld`
  ].join('\n')

describe("Gunicorn's logging crash told apart from a release that cannot boot", () => {
  it("is the master's own crash when the master that was reloaded logged it", () => {
    expect(crashedInLogging(CRASH(29), 29)).toBe(true)
  })

  it('is not, when another process logged it', () => {
    expect(crashedInLogging(CRASH(31), 29)).toBe(false)
  })

  it('is not, when a worker failed to boot (the release is the cause)', () => {
    for (const boot of [
      'web gunicorn[29]: [ERROR] Reason: Worker failed to boot.',
      'web gunicorn[250]: [ERROR] Exception in worker process',
      'web gunicorn[29]: [ERROR] Reason: App failed to load.'
    ])
      expect(crashedInLogging(`${CRASH(29)}\n${boot}`, 29)).toBe(false)
  })

  it('is not, without the crash', () => {
    expect(crashedInLogging('web gunicorn[29]: [INFO] Shutting down: Master', 29)).toBe(false)
    expect(crashedInLogging('', 29)).toBe(false)
  })
})
