import { describe, expect, it } from '@jest/globals'
import { ScriptedRemote } from '../../__fixtures__/scripted-remote.js'
import {
  findGunicornProcesses,
  parsePs,
  readGunicornProcesses
} from '../../src/host/gunicorn/gunicorn-processes.js'

const VENV = '/srv/app/.venv/bin'
const GUNICORN = `${VENV}/python3 ${VENV}/gunicorn --workers 2 --bind unix:/run/app/app.sock wsgi:app`

/** `ps -eo pid=,ppid=,args=` as procps prints it: right-aligned numbers. */
const ps = (rows: [number, number, string][]) =>
  rows
    .map(([pid, ppid, args]) => `${String(pid).padStart(7)} ${String(ppid).padStart(7)} ${args}`)
    .join('\n') + '\n'

const OTHER_SERVICE: [number, number, string][] = [
  [1, 0, '/sbin/init'],
  [900, 1, '/srv/other/.venv/bin/python3 -m gunicorn other:app'],
  [901, 900, '/srv/other/.venv/bin/python3 -m gunicorn other:app']
]

describe('parsePs', () => {
  it('reads pid, ppid and the whole command line', () => {
    expect(parsePs('    12     1 /usr/bin/python3 -m gunicorn  -w 2\n   13    12 \n')).toEqual([
      { pid: 12, ppid: 1, args: '/usr/bin/python3 -m gunicorn  -w 2' },
      { pid: 13, ppid: 12, args: '' }
    ])
  })
})

describe('findGunicornProcesses', () => {
  it('takes MainPID as the master when it runs Gunicorn, its children as workers', () => {
    const tree = ps([
      ...OTHER_SERVICE,
      [100, 1, GUNICORN],
      [102, 100, GUNICORN],
      [101, 100, GUNICORN]
    ])
    expect(findGunicornProcesses(tree, 100)).toEqual({
      masterPid: 100,
      workers: [101, 102],
      argv: GUNICORN.split(' '),
      viaWrapper: false
    })
  })

  it.each([
    ['uv run', '/usr/local/bin/uv run --frozen gunicorn --workers 2 wsgi:app'],
    ['poetry run', '/usr/bin/python3 /root/.local/bin/poetry run gunicorn --workers 2 wsgi:app'],
    ['sh -c', '/bin/sh -c cd /srv/app && gunicorn --workers 2 wsgi:app'],
    ['a wrapper script', '/bin/bash /srv/app/bin/start.sh']
  ])('finds the master below a launcher that did not exec (%s)', (_name, launcher) => {
    const tree = ps([
      ...OTHER_SERVICE,
      [100, 1, launcher],
      [120, 100, GUNICORN],
      [121, 120, GUNICORN],
      [122, 120, GUNICORN]
    ])
    expect(findGunicornProcesses(tree, 100)).toEqual({
      masterPid: 120,
      workers: [121, 122],
      argv: GUNICORN.split(' '),
      viaWrapper: true
    })
  })

  it('knows only the name of a master renamed by setproctitle', () => {
    const tree = ps([
      [1, 0, '/sbin/init'],
      [100, 1, '/usr/local/bin/uv run gunicorn wsgi:app'],
      [101, 100, 'gunicorn: master [wsgi:app]'],
      [102, 101, 'gunicorn: worker [wsgi:app]'],
      [103, 101, 'gunicorn: worker [wsgi:app]']
    ])
    expect(findGunicornProcesses(tree, 100)).toEqual({
      masterPid: 101,
      workers: [102, 103],
      procName: 'wsgi:app',
      viaWrapper: true
    })
    expect(findGunicornProcesses(tree, 101)?.viaWrapper).toBe(false)
  })

  it('finds nothing when MainPID is gone, zero, or nothing under it runs Gunicorn', () => {
    const tree = ps([...OTHER_SERVICE, [100, 1, '/srv/app/serve'], [101, 100, '/srv/app/serve']])
    expect(findGunicornProcesses(tree, 100)).toBeUndefined()
    expect(findGunicornProcesses(tree, 555)).toBeUndefined()
    expect(findGunicornProcesses(tree, 0)).toBeUndefined()
  })
})

describe('readGunicornProcesses', () => {
  it('lists the processes with one optional ps call, unabridged', async () => {
    const remote = new ScriptedRemote([
      {
        when: /^ps /,
        reply: {
          stdout: ps([
            [100, 1, GUNICORN],
            [101, 100, GUNICORN]
          ])
        }
      }
    ])
    const found = await readGunicornProcesses(remote, 100)
    expect(found).toMatchObject({ masterPid: 100, workers: [101], viaWrapper: false })
    expect(remote.commands).toEqual(['ps -ww -eo pid=,ppid=,args= 2>/dev/null || true'])
  })

  it('runs nothing when the unit has no MainPID', async () => {
    const remote = new ScriptedRemote([])
    expect(await readGunicornProcesses(remote, 0)).toBeUndefined()
    expect(remote.commands).toEqual([])
  })
})
