// Promises that run beside each other and are looked at later.

/** A promise's outcome, kept for later (nothing is left rejected and unhandled meanwhile). */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

export function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    value => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error })
  )
}
