// A small Python program the action runs on the server (`python3 -c HELPER
// <command> args...`) for the checks that would be fragile as shell text.
// The program lives in remote-helper.py, where Python can lint and test it;
// the bundle carries it as text. Values of an EnvironmentFile never leave the
// server: only names are printed.
import helperText from './remote-helper.py'

export const HELPER_PY: string = helperText

/** argv that runs one helper command with the given interpreter. */
export function helperArgv(python: string, command: string, ...args: string[]): string[] {
  return [python, '-c', HELPER_PY, command, ...args]
}
