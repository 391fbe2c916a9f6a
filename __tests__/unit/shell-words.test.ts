import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { ShellWordsError, splitShellWords } from '../../src/action/shell-words.js'

function refusal(text: string): string {
  try {
    splitShellWords(text)
  } catch (error) {
    expect(error).toBeInstanceOf(ShellWordsError)
    return (error as Error).message
  }
  throw new Error(`accepted ${JSON.stringify(text)}`)
}

/** The words /bin/sh makes of `text` (for texts a shell only splits). */
function shWords(text: string): string[] {
  const out = execFileSync(
    '/bin/sh',
    ['-c', `set -- ${text}; for a; do printf '%s\\0' "$a"; done`],
    {
      encoding: 'utf8',
      cwd: '/'
    }
  )
  return out.split('\0').slice(0, -1)
}

describe('splitShellWords', () => {
  it('keeps a double-quoted argument with parentheses as one word', () => {
    expect(splitShellWords('flask --app "wsgi:create_app()" db upgrade')).toEqual([
      'flask',
      '--app',
      'wsgi:create_app()',
      'db',
      'upgrade'
    ])
  })

  it.each([
    `--message 'two words' plain`,
    `"a b"c d\\ e`,
    `"say \\"hi\\"" 'it''s'`,
    `'$HOME' "\\$PATH" \\$X`,
    `'a|b' "c;d" 'e && f' "g > h" '*.py' "#tag" \\#x`,
    `--opt= "" ''`,
    `"back\\\\slash" 'single\\kept'`,
    `tab\tseparated   spaces`
  ])('splits %s exactly as /bin/sh does', text => {
    expect(splitShellWords(`cmd ${text}`)).toEqual(['cmd', ...shWords(text)])
  })

  it.each([
    ['flask db upgrade | tee log', 'operator |'],
    ['flask db upgrade; rm -rf /', 'operator ;'],
    ['flask db upgrade && echo ok', 'operator &&'],
    ['flask db upgrade || true', 'operator ||'],
    ['flask db upgrade > out.txt', 'operator >'],
    ['flask db upgrade < in.txt', 'operator <'],
    ['flask db upgrade 2>&1', 'operator >&'],
    ['flask db upgrade &', 'operator &'],
    ['(flask db upgrade)', 'operator ('],
    ['python manage.py *.sql', 'glob pattern *.sql'],
    ['python manage.py file?.sql', 'glob pattern file?.sql'],
    ['flask db upgrade --tag $RELEASE', 'uses $RELEASE'],
    ['flask db upgrade --tag "${RELEASE}"', 'uses $RELEASE'],
    ['flask db upgrade --tag $(date)', 'substitution'],
    ['flask db upgrade --tag `date`', 'backtick'],
    ['flask db upgrade --tag "`date`"', 'backtick'],
    ['flask db upgrade # comment', '# comment'],
    ['flask db upgrade "unterminated', 'unclosed double quote'],
    ["flask db upgrade 'unterminated", 'unclosed single quote'],
    ['flask db upgrade \\', 'backslash'],
    ['~/bin/migrate', 'starts a word with ~'],
    ['FLASK_APP=wsgi flask db upgrade', 'assignment FLASK_APP=wsgi'],
    ['flask db\nupgrade', 'one line'],
    ['   ', 'must name a command']
  ])('refuses %j (%s)', (text, reason) => {
    expect(refusal(text)).toContain(reason)
  })

  it('passes a literal backtick or $ in single quotes', () => {
    expect(splitShellWords("echo '`date` $HOME ~'")).toEqual(['echo', '`date` $HOME ~'])
  })
})
