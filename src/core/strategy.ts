// What a run does (mode) and how a host moves to a release (strategy).

export type Mode = 'deploy' | 'rollback' | 'check'
export const MODES: readonly Mode[] = ['deploy', 'rollback', 'check']

/** reload: one unit, graceful HUP. blue-green: two instances of a template unit, traffic moved by a symlink. */
export type Strategy = 'reload' | 'blue-green'
export const STRATEGIES: readonly Strategy[] = ['reload', 'blue-green']
