// Which old releases to delete: keep the newest `keep`, and never `current`,
// the previous good release, or the directory the Gunicorn master started in.

/** `all` is oldest first; returns the ids to delete, oldest first. */
export function releasesToPrune(
  all: string[],
  keep: number,
  protectedIds: (string | undefined)[]
): string[] {
  const kept = new Set(all.slice(-keep))
  for (const id of protectedIds) if (id) kept.add(id)
  return all.filter(id => !kept.has(id))
}

/** The release id a physical path under releases/ belongs to. */
export function releaseOfPath(releasesDir: string, path: string | undefined): string | undefined {
  if (!path || !path.startsWith(releasesDir + '/')) return undefined
  return path.slice(releasesDir.length + 1).split('/')[0]
}
