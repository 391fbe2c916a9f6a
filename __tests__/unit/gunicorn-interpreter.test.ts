import { describe, expect, it } from '@jest/globals'
import { runLocally, ScriptedRemote, type Rule } from '../../__fixtures__/scripted-remote.js'
import { findInterpreter } from '../../src/host/gunicorn/gunicorn-interpreter.js'
import { parseGunicornCommand } from '../../src/host/gunicorn/unit-info.js'

const words = (text: string) => text.split(' ')
const VENV = '/srv/app/.venv'

/** The probe's answer for an interpreter: its executable, and its venv root or nothing. */
const probes = (python: string, executable: string, venv = ''): Rule => ({
  when: new RegExp(`^${python.replace(/[/.]/g, '\\$&')} -c 'import sys`),
  reply: { stdout: `${executable}\n${venv}\n` }
})
const head = (path: string, line: string): Rule => ({
  when: new RegExp(`^head -n 3 ${path.replace(/[/.]/g, '\\$&')} `),
  reply: { stdout: `${line}\n` }
})

describe('findInterpreter', () => {
  it('takes the interpreter of python -m gunicorn and asks it for its venv', async () => {
    const remote = new ScriptedRemote([
      probes(`${VENV}/bin/python3.13`, `${VENV}/bin/python3.13`, VENV)
    ])
    const g = parseGunicornCommand(words(`${VENV}/bin/python3.13 -m gunicorn wsgi:app`))
    expect(await findInterpreter(remote, g)).toEqual({
      python: `${VENV}/bin/python3.13`,
      venv: VENV,
      source: 'ExecStart'
    })
  })

  it('asks a real interpreter (the probe runs on this machine)', async () => {
    const remote = new ScriptedRemote([{ when: /./, reply: c => runLocally(c) }])
    const found = await findInterpreter(
      remote,
      parseGunicornCommand(words('/usr/bin/python3 -m gunicorn wsgi:app'))
    )
    expect(found).toMatchObject({ python: '/usr/bin/python3', source: 'ExecStart' })
  })

  it.each([
    ['#!/opt/x/bin/python3.11', '/opt/x/bin/python3.11'],
    ['#!/usr/bin/env python3', 'python3']
  ])('reads a console script with %s', async (line, named) => {
    const remote = new ScriptedRemote([
      head(`${VENV}/bin/gunicorn`, line),
      probes(named, '/opt/x/bin/python3.11', '/opt/x')
    ])
    const g = parseGunicornCommand(words(`${VENV}/bin/gunicorn wsgi:app`))
    expect(await findInterpreter(remote, g)).toEqual({
      python: '/opt/x/bin/python3.11',
      venv: '/opt/x',
      source: `the #! line of ${VENV}/bin/gunicorn`
    })
  })

  it('resolves `/usr/bin/env gunicorn` on the host, then reads its #! line', async () => {
    const remote = new ScriptedRemote([
      { when: /^sh -c 'command -v "\$1"' sh gunicorn/, reply: { stdout: '/usr/bin/gunicorn\n' } },
      head('/usr/bin/gunicorn', '#!/usr/bin/python3'),
      probes('/usr/bin/python3', '/usr/bin/python3')
    ])
    const g = parseGunicornCommand(words('/usr/bin/env gunicorn wsgi:app'))
    expect(await findInterpreter(remote, g)).toMatchObject({ python: '/usr/bin/python3' })
    expect(remote.commands[0]).toContain('command -v')
  })

  it('falls back to the running master behind poetry run, never the PATH of the deploy user', async () => {
    const poetryVenv = '/home/app/.cache/pypoetry/virtualenvs/app-1a2b/bin'
    const remote = new ScriptedRemote([
      {
        when: /^ps /,
        reply: {
          stdout: `  100  1 /usr/bin/python3 /usr/bin/poetry run gunicorn wsgi:app\n  101  100 ${poetryVenv}/python ${poetryVenv}/gunicorn wsgi:app\n`
        }
      },
      probes(`${poetryVenv}/python`, `${poetryVenv}/python`, poetryVenv.replace(/\/bin$/, ''))
    ])
    const g = parseGunicornCommand(words('/usr/bin/poetry run gunicorn wsgi:app'))
    expect(await findInterpreter(remote, g, 100)).toEqual({
      python: `${poetryVenv}/python`,
      venv: poetryVenv.replace(/\/bin$/, ''),
      source: 'the running master 101'
    })
    expect(remote.commands.some(c => c.includes('command -v'))).toBe(false)
  })

  it('uses processes already read for a wrapper script', async () => {
    const remote = new ScriptedRemote([probes(`${VENV}/bin/python`, `${VENV}/bin/python`, VENV)])
    const g = parseGunicornCommand(['/srv/app/start.sh'])
    const found = await findInterpreter(remote, g, {
      masterPid: 7,
      workers: [8],
      argv: words(`${VENV}/bin/python -m gunicorn wsgi:app`),
      viaWrapper: true
    })
    expect(found).toMatchObject({ python: `${VENV}/bin/python`, venv: VENV })
  })

  it('answers with the reasons, without throwing, when nothing tells', async () => {
    const renamed = await findInterpreter(
      new ScriptedRemote([]),
      parseGunicornCommand(['/srv/app/start.sh']),
      { masterPid: 7, workers: [8], procName: 'wsgi:app', viaWrapper: true }
    )
    expect('error' in renamed && renamed.error).toMatch(/start\.sh is neither.*setproctitle/)
    const cold = await findInterpreter(
      new ScriptedRemote([{ when: /^ps /, reply: { stdout: '' } }]),
      parseGunicornCommand(words('/usr/local/bin/uv run gunicorn wsgi:app')),
      100
    )
    expect('error' in cold && cold.error).toMatch(
      /gunicorn, found through a PATH.*no running Gunicorn master/
    )
    const noShebang = await findInterpreter(
      new ScriptedRemote([head(`${VENV}/bin/gunicorn`, 'import sys')]),
      parseGunicornCommand(words(`${VENV}/bin/gunicorn wsgi:app`))
    )
    expect(noShebang).toEqual({ error: `${VENV}/bin/gunicorn is missing or has no #! line` })
    const broken = await findInterpreter(
      new ScriptedRemote([
        { when: /-c 'import sys/, reply: { code: 127, stderr: 'sh: 1: /gone/python: not found' } }
      ]),
      parseGunicornCommand(words('/gone/python -m gunicorn wsgi:app'))
    )
    expect('error' in broken && broken.error).toContain(
      '/gone/python (from ExecStart) does not run: sh: 1: /gone/python: not found'
    )
  })
})
