// A cancelled run (SIGINT/SIGTERM from the runner): steps check it between
// remote commands, and long remote commands stop on its signal.

export interface Cancellation {
  reason?: string
  /** Aborted with `reason`: pip and migrations are stopped on the host, not awaited. */
  signal?: AbortSignal
}

export function checkCancelled(c: Cancellation): void {
  if (c.reason) throw new Error(`cancelled (${c.reason})`)
}
