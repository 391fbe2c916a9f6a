import { describe, expect, it } from '@jest/globals'
import { bootFailureIn } from '../../src/host/gunicorn/boot-failure.js'

// As journalctl -o short-iso prints Gunicorn 20.1 (Debian 12) after a reload onto a release
// whose wsgi.py raises under Gunicorn (a real run, shortened).
const at = (pid: number, text: string) => `2026-12-05T23:02:01+0000 web gunicorn[${pid}]: ${text}`
const HUP = [
  at(298, '[2026-12-05 23:02:00 +0000] [298] [INFO] Handling signal: hup'),
  at(298, '[2026-12-05 23:02:00 +0000] [298] [INFO] Hang up: Master'),
  at(501, '[2026-12-05 23:02:00 +0000] [501] [INFO] Booting worker with pid: 501')
]
const traceback = (pid: number, frames: string[], error: string) => [
  at(pid, `[2026-12-05 23:02:01 +0000] [${pid}] [ERROR] Exception in worker process`),
  at(pid, 'Traceback (most recent call last):'),
  ...frames.map(f => at(pid, f)),
  ...(error ? [at(pid, error)] : [])
]
const LOAD_FRAMES = [
  '  File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 589, in spawn_worker',
  '    worker.init_process()',
  '  File "/usr/lib/python3/dist-packages/gunicorn/workers/base.py", line 134, in init_process',
  '    self.load_wsgi()',
  '  File "/usr/lib/python3/dist-packages/gunicorn/workers/base.py", line 146, in load_wsgi',
  '    self.wsgi = self.app.wsgi()',
  '                ^^^^^^^^^^^^^^^',
  '  File "/srv/myapp/current/wsgi.py", line 3, in <module>',
  '    raise RuntimeError("no boot under Gunicorn")'
]
const RUN_FRAMES = [
  '  File "/usr/lib/python3/dist-packages/gunicorn/workers/base.py", line 142, in init_process',
  '    self.run()',
  '  File "/usr/lib/python3/dist-packages/gunicorn/workers/sync.py", line 125, in run',
  '    self.run_for_one(timeout)'
]

describe('new workers that cannot load the app, in the journal', () => {
  it("names the worker and its exception once the traceback's last line is there", () => {
    const journal = [
      ...HUP,
      ...traceback(501, LOAD_FRAMES, 'RuntimeError: no boot under Gunicorn'),
      at(501, '[2026-12-05 23:02:01 +0000] [501] [INFO] Worker exiting (pid: 501)')
    ].join('\n')
    expect(bootFailureIn(journal)).toBe(
      'worker 501 could not load the app: RuntimeError: no boot under Gunicorn'
    )
  })

  it('waits for the exception line of a traceback still being written', () => {
    expect(bootFailureIn([...HUP, ...traceback(501, LOAD_FRAMES, '')].join('\n'))).toBeUndefined()
  })

  it("keeps one worker's traceback apart from another's interleaved lines", () => {
    const [head, ...rest] = traceback(501, LOAD_FRAMES, 'RuntimeError: no boot under Gunicorn')
    const other = at(502, '[2026-12-05 23:02:01 +0000] [502] [INFO] Booting worker with pid: 502')
    expect(bootFailureIn([head, other, ...rest].join('\n'))).toContain('worker 501')
  })

  it('is not a boot failure when a serving worker raised (the master replaces it)', () => {
    const journal = [
      ...HUP,
      ...traceback(313, RUN_FRAMES, 'OSError: [Errno 9] Bad file descriptor')
    ]
    expect(bootFailureIn(journal.join('\n'))).toBeUndefined()
  })

  it("takes the master's reason when the workers' tracebacks are not in the journal", () => {
    for (const line of [
      '[2026-12-05 23:02:31 +0000] [298] [ERROR] Reason: Worker failed to boot.',
      '[2026-12-05 23:02:01 +0000] [298] [ERROR] Worker (pid:501) exited with code 3.'
    ])
      expect(bootFailureIn([...HUP, at(298, line)].join('\n'))).toBe(
        `the master logged "${line.replace(/^\[[^\]]*\] \[\d+\] \[\w+\] /, '')}"`
      )
  })

  it('says nothing for a reload that goes well, or an unreadable journal', () => {
    expect(bootFailureIn(HUP.join('\n'))).toBeUndefined()
    expect(bootFailureIn('-- No entries --')).toBeUndefined()
    expect(bootFailureIn('')).toBeUndefined()
  })
})
