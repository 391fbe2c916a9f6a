// Runs at once, and runs that die: two deploys started together, a rollback started
// during a deploy, and a deploy killed with SIGKILL in each of its phases followed by a
// new deploy, under both strategies, each under HTTP load through Nginx. Each ends
// with one serving release, no lock left, and no failed request; a run that waited
// for the lock deploys onto what the other left and names it as its previous release.
import { describe, expect, it } from '@jest/globals'
import {
  appFor,
  deployLog,
  inputsFor,
  rootSh,
  runAction,
  servedRelease,
  type ActionRun,
  type KitHost
} from './kit.js'
import { countedFailures, unlessGunicornCrashed } from './problems.js'
import { startLoad, type LoadReport } from './load.js'
import { withHostGroup } from './with-host.js'

/** Modest load per host: several hosts run at once in the SIGKILL cases. */
const LOAD = { rate: 60, loops: 4, maxSeconds: 240 }
const SLOW = 420_000

type Strategy = 'reload' | 'blue-green'

function inputs(host: KitHost, strategy: Strategy, extra: Record<string, string>) {
  return inputsFor(host, {
    ...(strategy === 'blue-green' ? { strategy: 'blue-green' } : {}),
    'lock-timeout': '240',
    ...extra
  })
}

function deploy(
  host: KitHost,
  strategy: Strategy,
  id: string,
  opts: Parameters<typeof runAction>[1] = {}
): Promise<ActionRun> {
  return runAction(inputs(host, strategy, { source: appFor(host), 'release-id': id }), opts)
}

/** Under load: `work` runs while requests go through Nginx; the report covers all of it. */
async function loaded<T>(host: KitHost, work: () => Promise<T>): Promise<[T, LoadReport]> {
  const load = startLoad(host, LOAD)
  const outcome = await work().then(
    value => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error })
  )
  const report = await load.stop({ atLeast: 200 })
  if (!outcome.ok) throw outcome.error
  return [outcome.value, report]
}

/**
 * No request failed while `runs` ran (but for Gunicorn's own crash, when one of them names
 * it, and requests held past the client's timeout by an import the action warned is slow).
 */
function noneFailed(load: LoadReport, runs: ActionRun[]): void {
  expect(countedFailures(load, runs)).toEqual(
    unlessGunicornCrashed(runs, { failed: 0, failures: [] })
  )
}

/**
 * What must hold after every case: one release serves, no lock is left, and no upload
 * but that of a run killed while it uploaded (removed by a later deploy once it is two
 * hours old: a run waiting for the lock may still use it before that).
 */
async function settled(host: KitHost, strategy: Strategy, killed?: string): Promise<string> {
  const served = await servedRelease(host)
  const left = await rootSh(
    host,
    'cd /srv/myapp && { test -e .deploy-lock && echo lock; ls -A releases | grep "^\\.incoming-" || true; }'
  )
  const mine = new RegExp(`^\\.incoming-${killed ?? '-'}-[0-9a-f]+$`)
  expect(
    left
      .trim()
      .split('\n')
      .filter(l => l && !mine.test(l))
  ).toEqual([])
  if (strategy === 'blue-green') {
    const live = (await rootSh(host, 'readlink /srv/myapp/live.sock')).trim()
    const colour = /myapp-(blue|green)/.exec(live)?.[1]
    expect(colour).toBeDefined()
    expect((await rootSh(host, `systemctl is-active myapp@${colour}`)).trim()).toBe('active')
  }
  return served
}

const CASES: { strategy: Strategy; style?: 'blue-green' }[] = [
  { strategy: 'reload' },
  { strategy: 'blue-green', style: 'blue-green' }
]

describe.each(CASES)('runs at once under $strategy', ({ strategy, style }) => {
  const prefix = strategy === 'reload' ? 'cr' : 'cb'
  const hosts = withHostGroup(
    { [`${prefix}1`]: style ? { style } : 'fixed' } as Record<
      string,
      { style: 'blue-green' } | 'fixed'
    >,
    async group => {
      const host = Object.values(group)[0]
      const first = await deploy(host, strategy, 'base')
      if (first.outputs.status !== 'deployed')
        throw new Error(`base deploy failed: ${first.stdout}`)
    }
  )
  const host = () => Object.values(hosts)[0]

  it(
    'deploys two runs started together one after the other; the second names the first as its previous release',
    async () => {
      const h = host()
      const [[a, b], load] = await loaded(h, () =>
        Promise.all([
          deploy(h, strategy, 'a1'),
          new Promise<ActionRun>(resolve =>
            setTimeout(() => resolve(deploy(h, strategy, 'b1')), 300)
          )
        ])
      )
      noneFailed(load, [a, b])
      expect([a.outputs.status, b.outputs.status]).toEqual(['deployed', 'deployed'])
      // whichever took the lock first, the other read the host after it and names its release
      const log = (await deployLog(h)).filter(e => e.outcome === 'deployed').slice(-2)
      const [first, second] = log.map(e => String(e.id))
      const secondRun = second === 'a1' ? a : b
      expect(secondRun.outputs['previous-release']).toBe(first)
      expect(secondRun.stdout).toContain('waiting for the deploy lock')
      expect(await settled(h, strategy)).toBe(second)
    },
    SLOW
  )

  it(
    'runs a rollback started during a deploy after it, back from what the deploy left',
    async () => {
      const h = host()
      const before = await servedRelease(h)
      let rollback: Promise<ActionRun> | undefined
      const [run, load] = await loaded(h, async () => {
        const deployed = await deploy(h, strategy, 'c1', {
          onLine: line => {
            if (!rollback && /switching (current|live\.sock)/.test(line))
              rollback = runAction(inputs(h, strategy, { mode: 'rollback' }))
          }
        })
        return [deployed, await rollback!] as const
      })
      const [deployed, rolled] = run
      noneFailed(load, [deployed, rolled])
      expect(deployed.outputs.status).toBe('deployed')
      expect(rolled.outputs).toMatchObject({
        status: 'rolled-back',
        release: before,
        'previous-release': 'c1'
      })
      expect(await settled(h, strategy)).toBe(before)
    },
    SLOW
  )
})

/** Where a deploy is killed: the first line of each phase, per strategy. */
const PHASES: { phase: string; reload: RegExp; bg: RegExp }[] = [
  {
    phase: 'upload',
    reload: /connecting \(host key pinned\)/,
    bg: /connecting \(host key pinned\)/
  },
  { phase: 'preflight', reload: /::group::.*Preflight/, bg: /::group::.*Preflight/ },
  { phase: 'prepare', reload: /::group::.*Dependencies/, bg: /::group::.*Dependencies/ },
  { phase: 'cutover', reload: /reloading myapp/, bg: /starting myapp@/ },
  { phase: 'proof', reload: /::group::.*Verify k1 serves/, bg: /switching live\.sock/ }
]

describe.each(CASES)('a deploy killed with SIGKILL under $strategy', ({ strategy, style }) => {
  const prefix = strategy === 'reload' ? 'kr' : 'kb'
  const names = PHASES.map((_, i) => `${prefix}${i + 1}`)
  const spec = Object.fromEntries(names.map(n => [n, style ? { style } : 'fixed'])) as Record<
    string,
    { style: 'blue-green' } | 'fixed'
  >
  const hosts = withHostGroup(spec)

  it(
    'leaves a serving release in every phase, and the next deploy takes the stale lock over and proceeds',
    async () => {
      const results = await Promise.all(
        PHASES.map(async ({ phase, reload, bg }, i) => {
          const h = hosts[names[i]]
          const marker = strategy === 'reload' ? reload : bg
          const before = await servedRelease(h)
          let killed = false
          const [[first, second], load] = await loaded(h, async () => {
            const k = await deploy(h, strategy, 'k1', {
              onLine: (line, pid) => {
                if (killed || !marker.test(line)) return
                killed = true
                // in the upload phase, once the upload is under way
                setTimeout(() => process.kill(pid, 'SIGKILL'), phase === 'upload' ? 400 : 0)
              }
            })
            // the next deploy waits for the dead run's lock to turn stale, then takes it over
            const next = await runAction(
              inputs(h, strategy, {
                source: appFor(h),
                'release-id': 'k2',
                'lock-stale-after': '60'
              })
            )
            return [k, next] as const
          })
          return { phase, h, before, killed, first, second, load }
        })
      )
      for (const r of results) {
        expect({ phase: r.phase, killed: r.killed, code: r.first.code }).toEqual({
          phase: r.phase,
          killed: true,
          code: null
        })
        expect({ phase: r.phase, status: r.second.outputs.status }).toEqual({
          phase: r.phase,
          status: 'deployed'
        })
        // what the killed run left (k1 once its switch happened, else what served before) is the previous release
        expect(['k1', r.before]).toContain(r.second.outputs['previous-release'])
        noneFailed(r.load, [r.first, r.second])
        expect(await settled(r.h, strategy, 'k1')).toBe('k2')
      }
    },
    SLOW
  )
})
