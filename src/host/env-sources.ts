// Where the service's environment comes from, as systemd builds it: the unit's
// Environment= assignments first, then each EnvironmentFile= in the order the
// unit and its drop-ins list them, a later value winning; a file named with a
// `-` prefix is optional (a missing one is skipped). The checks, the import
// check and the migrations load the same environment on the host (the remote
// helper's env spec); only names, never values, come back from those reads (the
// values are read once, by envvalues, only to scrub them from what the action prints).

export interface EnvFile {
  path: string
  /** `EnvironmentFile=-PATH`: systemd skips it when it does not exist. */
  optional: boolean
}

export interface EnvSources {
  /** Environment= assignments (`NAME=value`), in order. */
  assignments: string[]
  files: EnvFile[]
}

/** The unit's environment; `envFile` (the env-file input) stands for its files. */
export function envSourcesOf(
  unit: { environment: string[]; environmentFiles: EnvFile[] },
  envFile?: string
): EnvSources {
  return {
    assignments: unit.environment,
    files: envFile ? [{ path: envFile, optional: false }] : unit.environmentFiles
  }
}

/** The remote helper's argument for this environment: `-` for none, else its JSON spec. */
export function envArg(sources: EnvSources | undefined): string {
  if (!sources || (sources.files.length === 0 && sources.assignments.length === 0)) return '-'
  return JSON.stringify({ set: sources.assignments, files: sources.files })
}

/** The files for messages: `/etc/myapp.env, /etc/myapp.d/extra.env (optional)`. */
export function describeEnvFiles(sources: Pick<EnvSources, 'files'>): string {
  return sources.files.map(f => `${f.path}${f.optional ? ' (optional)' : ''}`).join(', ')
}

/** What the remote helper's envcheck reports about one file. */
export interface EnvFileCheck extends EnvFile {
  exists: boolean
  readable: boolean
  /** Line numbers that are not NAME=VALUE. */
  errors: number[]
}

/** The remote helper's envcheck: names only, never a value. */
export interface EnvCheck {
  /** Every file that is not optional exists. */
  exists: boolean
  /** Every file that exists can be read by the deploy user. */
  readable: boolean
  files: EnvFileCheck[]
  missing: string[]
  empty: string[]
  /** Variables the environment sets. */
  count: number
}
