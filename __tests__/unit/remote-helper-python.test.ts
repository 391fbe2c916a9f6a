// The remote helper's own Python tests (__tests__/python), run by the system
// Python with unittest. Each Python test is one Jest test, so the suite's counts
// include them; the whole run must also exit 0 and run exactly those tests.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from '@jest/globals'

const PYTHON = '/usr/bin/python3'
const SUITE_DIR = fileURLToPath(new URL('../python', import.meta.url))
// No __pycache__ next to the helper or the tests.
const ENV = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }

// unittest's own discovery, listing test ids without running them.
const LIST_TESTS = `
import sys, unittest
def ids(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from ids(test)
        else:
            yield test.id()
for test_id in ids(unittest.defaultTestLoader.discover(sys.argv[1])):
    print(test_id)
`

interface PythonTest {
  id: string
  title: string
}

function discoverTests(): PythonTest[] {
  const listing = spawnSync(PYTHON, ['-c', LIST_TESTS, SUITE_DIR], { encoding: 'utf8', env: ENV })
  if (listing.status !== 0) {
    throw new Error(`cannot list the Python tests (${PYTHON}): ${listing.error ?? listing.stderr}`)
  }
  return listing.stdout
    .split('\n')
    .filter(line => line !== '')
    .map(id => {
      const [method = id, testCase = ''] = id.split('.').reverse()
      return { id, title: `${testCase}: ${method.replace(/^test_/, '').replace(/_/g, ' ')}` }
    })
}

interface UnittestReport {
  /** test id -> "ok", "FAIL", "ERROR", "skipped '...'", ... */
  outcomes: Map<string, string>
  /** test id -> the traceback unittest printed for a failure or error */
  details: Map<string, string>
  /** the N of "Ran N tests", or undefined when unittest never got that far */
  ran: number | undefined
}

// `name (module.Class.name)` since Python 3.11, `name (module.Class)` before.
function testId(name: string, inParens: string): string {
  return inParens.endsWith(`.${name}`) ? inParens : `${inParens}.${name}`
}

/** Reads `python3 -m unittest -v` output (its stderr). */
function parseUnittestVerbose(text: string): UnittestReport {
  const outcomes = new Map<string, string>()
  const details = new Map<string, string>()
  // A docstring's first line, when a test has one, sits between the name and the outcome.
  const result =
    /^(\w+) \(([\w.]+)\)(?:\n[^\n]*?)? \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$/gm
  for (const [, name, inParens, outcome] of text.matchAll(result)) {
    outcomes.set(testId(name, inParens), outcome)
  }
  const rule = '-'.repeat(70)
  for (const block of text.split(`${'='.repeat(70)}\n`).slice(1)) {
    const head = /^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)/.exec(block)
    if (head) details.set(testId(head[1], head[2]), block.split(`${rule}\nRan `)[0].trim())
  }
  const ran = /^Ran (\d+) tests? in /m.exec(text)
  return { outcomes, details, ran: ran ? Number(ran[1]) : undefined }
}

const tests = discoverTests()

describe('remote helper Python tests', () => {
  let run: SpawnSyncReturns<string>
  let report: UnittestReport

  beforeAll(() => {
    run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-v', '-s', SUITE_DIR], {
      encoding: 'utf8',
      env: ENV,
      timeout: 110_000
    })
    report = parseUnittestVerbose(run.stderr ?? '')
  })

  it('unittest passes as a whole and runs every listed test', () => {
    expect({
      status: run.status,
      ran: report.ran,
      tail: run.status === 0 ? '' : run.stderr.slice(-4000)
    }).toEqual({
      status: 0,
      ran: tests.length,
      tail: ''
    })
    expect(tests.length).toBeGreaterThan(0)
  })

  it.each(tests)('$title', ({ id }) => {
    const outcome = report.outcomes.get(id) ?? 'no result in the unittest output'
    expect(outcome === 'ok' ? 'ok' : `${outcome}\n${report.details.get(id) ?? ''}`).toBe('ok')
  })
})

describe('parseUnittestVerbose', () => {
  it('reads outcomes, failure tracebacks and the count in both id styles', () => {
    const text = [
      'test_a (mod.Case.test_a) ... ok',
      'test_b (mod.Case) ... FAIL',
      'test_c (mod.Case.test_c)',
      'Has a docstring. ... ERROR',
      "test_d (mod.Case.test_d) ... skipped 'no sudo'",
      '',
      '='.repeat(70),
      'FAIL: test_b (mod.Case)',
      '-'.repeat(70),
      'Traceback (most recent call last):',
      'AssertionError: 1 != 2',
      '',
      '='.repeat(70),
      'ERROR: test_c (mod.Case.test_c)',
      'Has a docstring.',
      '-'.repeat(70),
      'Traceback (most recent call last):',
      'KeyError: x',
      '',
      '-'.repeat(70),
      'Ran 4 tests in 0.010s',
      '',
      'FAILED (failures=1, errors=1, skipped=1)'
    ].join('\n')
    const report = parseUnittestVerbose(text)
    expect(Object.fromEntries(report.outcomes)).toEqual({
      'mod.Case.test_a': 'ok',
      'mod.Case.test_b': 'FAIL',
      'mod.Case.test_c': 'ERROR',
      'mod.Case.test_d': "skipped 'no sudo'"
    })
    expect(report.details.get('mod.Case.test_b')).toContain('AssertionError: 1 != 2')
    expect(report.details.get('mod.Case.test_c')).toContain('KeyError: x')
    expect(report.details.get('mod.Case.test_c')).not.toContain('Ran 4')
    expect(report.ran).toBe(4)
  })

  it('has no count when unittest stopped before running', () => {
    expect(
      parseUnittestVerbose('Traceback (most recent call last):\nImportError: boom\n').ran
    ).toBeUndefined()
  })
})
