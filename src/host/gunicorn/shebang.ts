// The `#!` line of a console script (gunicorn in a venv's bin/), read once: which
// interpreter runs it. Used to find the unit's Python (gunicorn-interpreter.ts) and
// to check that the script's interpreter imports Gunicorn (host-facts.ts).
import { baseName } from './gunicorn-launch.js'

export interface Shebang {
  /** A path, or a name looked up on PATH (`lookedUp`: `#!/usr/bin/env python3`). */
  interpreter: string
  lookedUp: boolean
  /** Its arguments (`-u`, ...). */
  args: string[]
}

/** How many lines parseShebang needs: pip's /bin/sh form names the interpreter on line 2. */
export const SHEBANG_LINES = 3

/** env's options that take a value as the next word. */
const ENV_WITH_VALUE = new Set(['-u', '--unset', '-C', '--chdir'])

/** The interpreter after `env [OPTIONS] [NAME=VALUE...]`, with its arguments. */
function afterEnv(words: string[]): Shebang | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i]
    if (ENV_WITH_VALUE.has(w)) i++
    else if (w.startsWith('-') || /^[A-Za-z_]\w*=/.test(w)) continue
    else return { interpreter: w, lookedUp: !w.includes('/'), args: words.slice(i + 1) }
  }
  return undefined
}

/**
 * The interpreter the first lines of a script name: `#!PATH [ARG]` (spaces after `#!`
 * allowed), `#!/usr/bin/env [-S] [NAME=VALUE...] NAME [ARGS]`, or the form pip writes
 * when the interpreter's path has spaces or is too long for a `#!` line:
 * `#!/bin/sh` then `'''exec' "PATH" "$0" "$@"`. Undefined for anything else.
 */
export function parseShebang(head: string): Shebang | undefined {
  const [first = '', second = ''] = head.split('\n').map(l => l.replace(/\r$/, ''))
  const words = /^#!(.*)$/.exec(first)?.[1].trim().split(/\s+/) ?? []
  if (words.length === 0 || words[0] === '') return undefined
  const [program, ...args] = words
  if (baseName(program) === 'env') return afterEnv(args)
  const exec = /^'''exec' "(.+)" "\$0" "\$@"$/.exec(second)
  if (exec && /^\/bin\/(ba)?sh$/.test(program))
    return { interpreter: exec[1], lookedUp: false, args: [] }
  return { interpreter: program, lookedUp: false, args }
}
