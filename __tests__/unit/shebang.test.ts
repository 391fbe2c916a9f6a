// A console script's #! line, read by one parser, for the unit's interpreter and for
// check mode's venv check: `#!/usr/bin/env python3` names python3, not /usr/bin/env.
import { describe, expect, it } from '@jest/globals'
import { healthyFacts } from '../../__fixtures__/host-facts.js'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import { parseShebang } from '../../src/host/gunicorn/shebang.js'
import { parseGunicornCommand } from '../../src/host/gunicorn/unit-info.js'
import { runChecks } from '../../src/host/host-checks.js'
import { scriptShebang } from '../../src/host/host-facts.js'

describe('parseShebang', () => {
  it.each([
    ['#!/srv/app/.venv/bin/python3', '/srv/app/.venv/bin/python3', false, []],
    ['#! /srv/app/.venv/bin/python3', '/srv/app/.venv/bin/python3', false, []],
    ['#!  /usr/bin/python3  -u \r', '/usr/bin/python3', false, ['-u']],
    ['#!/opt/x/bin/python3.11 -u', '/opt/x/bin/python3.11', false, ['-u']],
    ['#!/usr/bin/env python3', 'python3', true, []],
    ['#! /usr/bin/env python3', 'python3', true, []],
    ['#!/usr/bin/env -S python3 -u', 'python3', true, ['-u']],
    ['#!/usr/bin/env -S PYTHONUNBUFFERED=1 python3.12 -u', 'python3.12', true, ['-u']],
    ['#!/usr/bin/env -u PYTHONPATH python3', 'python3', true, []],
    ['#!/usr/bin/env /opt/py/bin/python3', '/opt/py/bin/python3', false, []],
    [
      `#!/bin/sh\n'''exec' "/srv/my app/.venv/bin/python3" "$0" "$@"\n' '''\n`,
      '/srv/my app/.venv/bin/python3',
      false,
      []
    ]
  ])('%j', (head, interpreter, lookedUp, args) => {
    expect(parseShebang(head)).toEqual({ interpreter, lookedUp, args })
  })

  it.each(['import sys', '', '#!', '#!/usr/bin/env', '#!/usr/bin/env -i'])(
    '%j names no interpreter',
    head => {
      expect(parseShebang(head)).toBeUndefined()
    }
  )
})

describe("check mode's venv check of a console script", () => {
  const SCRIPT = '/srv/myapp/.venv/bin/gunicorn'
  const g = parseGunicornCommand([SCRIPT, '--workers', '3', 'wsgi:app'])

  /** A host whose script starts with `line`; `imports` run `-c 'import gunicorn'` with success. */
  function host(line: string, imports: string[]) {
    return new ScriptedRemote([
      { when: /^head -n 3 /, reply: { stdout: `${line}\n` } },
      {
        when: / -c 'import gunicorn'$/,
        reply: c => ({ code: imports.includes(c.split(' ')[0]) ? 0 : 127 })
      }
    ])
  }

  async function venvFindings(line: string, imports: string[]) {
    const remote = host(line, imports)
    const shebang = await scriptShebang(remote, g)
    const findings = runChecks(healthyFacts({ gunicorn: g, shebang }), {
      releasePath: '/srv/myapp',
      requiredEnv: [],
      minFreeBytes: 0
    }).findings.filter(f => f.check === 'venv')
    return { findings: findings.map(f => `${f.severity}: ${f.finding}`), commands: remote.commands }
  }

  it('runs the python3 that #!/usr/bin/env python3 names, and finds no venv error', async () => {
    const { findings, commands } = await venvFindings('#!/usr/bin/env python3', ['python3'])
    expect(findings).toEqual([`ok: ${SCRIPT} runs python3`])
    expect(commands[1]).toBe("python3 -c 'import gunicorn'")
  })

  it("warns, not errs, when the deploy user's python3 cannot import gunicorn", async () => {
    const { findings } = await venvFindings('#!/usr/bin/env python3', [])
    expect(findings).toEqual([
      `warning: ${SCRIPT} runs python3 from the PATH, and the deploy user's python3 cannot import gunicorn (the service's PATH may differ)`
    ])
  })

  it('errs for an interpreter path that cannot import gunicorn', async () => {
    const { findings } = await venvFindings('#!/srv/myapp/.venv/bin/python3', [])
    expect(findings).toEqual([
      `error: ${SCRIPT} runs /srv/myapp/.venv/bin/python3, which cannot import gunicorn`
    ])
  })
})
