// What the switch of `current` changes besides the code: every path the unit,
// Gunicorn or Nginx reaches through `current` points into the new release once
// it moves. Each is checked against the new release before the switch, so that
// a release that would certainly break the site is refused while nothing has
// changed, naming the path and the fix; what cannot be judged is a warning.
//
// Gunicorn (20 to 26) re-reads its configuration on every reload (HUP), and
// exits when it cannot: `-c` given as an absolute path through `current` is
// read from the NEW release. A relative `-c`, or the default ./gunicorn.conf.py,
// is read from the directory the master runs in, which is the release that
// served before the switch (Gunicorn changes to that directory before it reads
// the file): that file's bind and workers apply with this reload, and the new
// release's own file only with the next one.
import { reaches } from './endpoint.js'
import { bindEndpoint, DEFAULT_BIND, type Bind } from './gunicorn/bind.js'
import { staticLocationFor, type ProxyPass, type ServerBlock } from './nginx/nginx-config.js'
import {
  withConfigFile,
  withDefaultWorkers,
  type GunicornCommand,
  type UnitInfo
} from './gunicorn/unit-info.js'
import { toShell } from '../transport/shell-quote.js'
import type { RemoteHost } from '../transport/ssh-connection.js'

/** What the switch would break for certain, with the path and the fix. */
export interface SwitchProblem {
  path: string
  cause: string
  fix: string
}

export interface SwitchPrediction {
  problems: SwitchProblem[]
  warnings: string[]
  /** The worker count the reload will apply, when the configuration it reads sets another one. */
  workers?: number
}

export interface SwitchFacts {
  /** release-path */
  root: string
  unit: Pick<UnitInfo, 'execStart' | 'environmentFiles' | 'workingDirectory'>
  gunicorn: GunicornCommand
  /** Where Nginx sends the requests for Gunicorn, when known. */
  proxies?: ProxyPass[]
  /** Physical directory the master runs in (undefined: not readable). */
  masterDir?: string
  /** Physical directory of the release that serves now. */
  currentDir?: string
  /** The new release's directory (releases/<id>). */
  newDir: string
  /** Nginx's server blocks that proxy to Gunicorn, when read. */
  servers?: ServerBlock[]
}

/** A path through `<root>/current`, as the part below `current` ('' for current itself). */
export function belowCurrent(root: string, path: string): string | undefined {
  const current = `${root.replace(/\/+$/, '')}/current`
  const clean = path.replace(/\/+/g, '/').replace(/(.)\/$/, '$1')
  if (clean === current) return ''
  return clean.startsWith(`${current}/`) ? clean.slice(current.length + 1) : undefined
}

type Need = 'file' | 'dir'

interface Reached {
  /** What reaches the path, for messages. */
  what: string
  path: string
  below: string
  need: Need
}

/** Every path the unit and Gunicorn reach through `current` that the new release must have. */
function reachedPaths(f: SwitchFacts): Reached[] {
  const reached: Reached[] = []
  const add = (what: string, path: string | undefined, need: Need) => {
    const below = path === undefined ? undefined : belowCurrent(f.root, path)
    if (below !== undefined && below !== '') reached.push({ what, path: path!, below, need })
  }
  const g = f.gunicorn
  add(`Gunicorn's --chdir`, g.chdir, 'dir')
  add("the unit's WorkingDirectory", f.unit.workingDirectory, 'dir')
  add("the unit's ExecStart", f.unit.execStart[0], 'file')
  if (g.launcher.kind === 'script') add("the unit's Gunicorn script", g.launcher.path, 'file')
  // systemd skips a missing optional (`-` prefixed) EnvironmentFile: only the others must exist
  for (const file of f.unit.environmentFiles)
    if (!file.optional) add("the unit's EnvironmentFile", file.path, 'file')
  const given = g.beforeConfig ? g.beforeConfig.configFile : g.configFile
  if (given?.startsWith('/')) add(`Gunicorn's -c`, given, 'file')
  return reached
}

/** A unix socket Gunicorn binds inside a release (through `current`, or relative to its directory there). */
function socketsInRelease(f: SwitchFacts): SwitchProblem[] {
  const inRelease =
    f.gunicorn.chdir !== undefined && belowCurrent(f.root, f.gunicorn.chdir) !== undefined
  return f.gunicorn.binds.flatMap(bind => {
    const path = bind.kind === 'unix' ? bind.path : undefined
    if (!path) return []
    if (path.startsWith('/') ? belowCurrent(f.root, path) === undefined : !inRelease) return []
    return [
      {
        path,
        cause: `Gunicorn binds the socket ${path} inside the release that serves: after the switch, ${path.startsWith('/') ? path : 'that path'} leads into the new release, where no socket exists, and Nginx answers 502`,
        fix: `bind Gunicorn to a socket outside the releases, e.g. RuntimeDirectory=<name> and --bind unix:/run/<name>/gunicorn.sock, point Nginx at it, and restart once`
      }
    ]
  })
}

/** The existence checks and the config files, in one round trip each, side by side. */
async function readNewRelease(
  remote: RemoteHost,
  checks: string[],
  configs: string[]
): Promise<{ present: Set<string>; texts: Map<string, string | undefined> }> {
  const [exist, ...read] = await Promise.all([
    checks.length === 0
      ? Promise.resolve(undefined)
      : remote.exec(
          toShell([
            'sh',
            '-c',
            'for p; do k=${p%%:*}; f=${p#*:}; if [ "$k" = d ]; then [ -d "$f" ] && echo "$p"; else [ -f "$f" ] && echo "$p"; fi; done; exit 0',
            'sh',
            ...checks
          ]),
          { timeoutMs: 30_000 }
        ),
    ...configs.map(file => remote.exec(toShell(['cat', '--', file]), { timeoutMs: 30_000 }))
  ])
  if (exist && exist.code !== 0) throw new Error(`could not read the new release: ${exist.stderr}`)
  const present = new Set((exist?.stdout ?? '').split('\n').filter(Boolean))
  const texts = new Map(
    configs.map((file, i) => [file, read[i].code === 0 ? read[i].stdout : undefined])
  )
  return { present, texts }
}

/** What a configuration file read on the reload does to the bind and the workers. */
function judgeConfig(
  f: SwitchFacts,
  file: string,
  text: string,
  prediction: SwitchPrediction,
  fix: string
): void {
  const base = f.gunicorn.beforeConfig
  if (!base) {
    prediction.warnings.push(
      `${file}: not verified what it sets (the unit's Gunicorn options are not known without it)`
    )
    return
  }
  const next = withDefaultWorkers(withConfigFile(base, file, text))
  if (!next.configRead || next.computed?.includes('bind')) {
    prediction.warnings.push(
      `${file} sets settings from expressions; the reload applies it, and what it binds cannot be judged before the switch`
    )
    return
  }
  const proxies = f.proxies ?? []
  const served = (binds: Bind[]) =>
    proxies.some(p =>
      p.endpoints.some(e =>
        (binds.length > 0 ? binds : [DEFAULT_BIND]).some(b => {
          const endpoint = bindEndpoint(b)
          return endpoint !== undefined && reaches(e, endpoint) === 'yes'
        })
      )
    )
  if (proxies.length > 0 && served(f.gunicorn.binds) && !served(next.binds))
    prediction.problems.push({
      path: file,
      cause: `the reload applies ${file}, which binds ${next.binds.map(b => b.text).join(', ') || "Gunicorn's default 127.0.0.1:8000"}: Gunicorn would stop listening where Nginx sends the requests (${f.gunicorn.binds.map(b => b.text).join(', ')})`,
      fix
    })
  if (next.workers !== undefined && next.workers !== f.gunicorn.workers)
    prediction.workers = next.workers
}

/**
 * Checks the new release against every path reached through `current`, and the
 * configuration file the reload will read. Read-only: one round trip.
 */
export async function predictSwitch(remote: RemoteHost, f: SwitchFacts): Promise<SwitchPrediction> {
  const prediction: SwitchPrediction = { problems: socketsInRelease(f), warnings: [] }
  const reached = reachedPaths(f)
  const newPath = (below: string) => `${f.newDir}/${below}`
  const checks = reached.map(r => `${r.need === 'dir' ? 'd' : 'f'}:${newPath(r.below)}`)
  // Static files Nginx serves through current: the directory must exist in the new release
  // when it exists in the one serving now.
  const location = f.servers ? staticLocationFor(f.servers, `${f.root}/current`) : undefined
  const staticDir = location && !location.exact && location.subdir ? location.subdir : undefined
  if (staticDir && f.currentDir)
    checks.push(`d:${f.currentDir}/${staticDir}`, `d:${newPath(staticDir)}`)
  // The configuration file the reload reads: through current (the new release's), or in the master's directory.
  // As given (-c, or GUNICORN_CMD_ARGS' --config), before the start's own reading resolved it.
  const given = f.gunicorn.beforeConfig ? f.gunicorn.beforeConfig.configFile : f.gunicorn.configFile
  const config = given ?? 'gunicorn.conf.py'
  const throughCurrent = config.startsWith('/') ? belowCurrent(f.root, config) : undefined
  const chdirInRelease =
    f.gunicorn.chdir !== undefined && belowCurrent(f.root, f.gunicorn.chdir) !== undefined
  const servingDir = f.masterDir ?? f.currentDir
  const reread =
    throughCurrent !== undefined
      ? newPath(throughCurrent)
      : !config.startsWith('/') && chdirInRelease && servingDir
        ? `${servingDir}/${config.replace(/^\.\//, '')}`
        : undefined
  const { present, texts } = await readNewRelease(remote, checks, reread ? [reread] : [])
  for (const r of reached)
    if (!present.has(`${r.need === 'dir' ? 'd' : 'f'}:${newPath(r.below)}`))
      prediction.problems.push({
        path: r.path,
        cause: `${r.what} is ${r.path}, which the new release does not have (${r.need === 'dir' ? 'no directory' : 'no file'} ${r.below}): ${r.what.includes('-c') ? 'Gunicorn re-reads it on the reload and exits without it' : 'after the switch the unit cannot start from it'}`,
        fix: `add ${r.below} to the release (or stop excluding it), or point the unit at a path outside ${f.root}/current`
      })
  if (
    staticDir &&
    f.currentDir &&
    present.has(`d:${f.currentDir}/${staticDir}`) &&
    !present.has(`d:${newPath(staticDir)}`)
  )
    prediction.problems.push({
      path: `${f.root}/current/${staticDir}`,
      cause: `Nginx serves ${location!.urlPrefix} from ${f.root}/current/${staticDir}, which the new release does not have: every static file would answer 404 after the switch`,
      fix: `build or add ${staticDir}/ in the release before the deploy`
    })
  if (reread) {
    const text = texts.get(reread)
    const fix =
      throughCurrent !== undefined
        ? `keep the bind Nginx uses in ${throughCurrent}, or change Nginx and the unit together and restart once`
        : `keep the bind Nginx uses in ${reread}, or name the file with an absolute -c ${f.root}/current/${config.replace(/^\.\//, '')} and restart once`
    if (text !== undefined) judgeConfig(f, reread, text, prediction, fix)
    else if (throughCurrent !== undefined && !reached.some(r => r.path === config))
      prediction.warnings.push(
        `${reread} could not be read: what the reload applies is not verified`
      )
  }
  return prediction
}
