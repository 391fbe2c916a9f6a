// Nginx configuration syntax, read the way Nginx reads it: words, quoted
// strings with escapes, `;` and `{ }`, `#` comments, and `include` resolved
// against the configuration prefix. Pure: it works on files already read
// (path -> text) and says which include patterns it still needs.

/** One directive; `block` holds the children of `name ... { }`. */
export interface Directive {
  name: string
  args: string[]
  file: string
  line: number
  block?: Directive[]
}

export interface NginxSyntaxError {
  file: string
  line: number
  message: string
}

/** What was read of an Nginx configuration, by `nginx -T` or file by file. */
export interface NginxSources {
  /** The main configuration file (`nginx -c`, `--conf-path=`). */
  mainPath: string
  /** Files read: absolute path -> text. */
  files: ReadonlyMap<string, string>
  /** Include globs already expanded on the host: absolute pattern -> matching paths. */
  globs?: ReadonlyMap<string, readonly string[]>
  /** `files` holds every file Nginx reads (`nginx -T`): a pattern no path matches matches nothing. */
  exhaustive?: boolean
  /** Files or directories that exist but could not be read: path -> why. */
  unreadable?: ReadonlyMap<string, string>
}

/** The main file with every include expanded in place. */
export interface NginxTree {
  mainPath: string
  /** Directory relative include paths are resolved against. */
  prefix: string
  directives: Directive[]
  errors: NginxSyntaxError[]
  /** Absolute include patterns (globs or paths) whose files were not provided. */
  unresolvedIncludes: string[]
  /** Paths that were needed but could not be read, with why. */
  unreadable: string[]
}

interface Token {
  kind: 'word' | ';' | '{' | '}'
  text: string
  line: number
}

const SPACE = new Set([' ', '\t', '\r', '\n'])

/** Nginx's unescaping of a word: \" \' \\ lose the backslash, \t \r \n become control characters. */
function unescape(raw: string): string {
  const controls: Record<string, string> = { t: '\t', r: '\r', n: '\n' }
  let out = ''
  for (let i = 0; i < raw.length; i++) {
    const next = raw[i + 1]
    if (raw[i] === '\\' && next !== undefined && `"'\\`.includes(next)) {
      out += next
      i++
    } else if (raw[i] === '\\' && next !== undefined && next in controls) {
      out += controls[next]
      i++
    } else out += raw[i]
  }
  return out
}

interface LexState {
  line: number
  word: string
  wordLine: number
  inWord: boolean
  quote: '' | '"' | "'"
  escaped: boolean
  variable: boolean
  needSpace: boolean
  comment: boolean
}

/** Splits one file into tokens; the error is Nginx's message for the first character it refuses. */
export function tokenize(text: string): {
  tokens: Token[]
  error?: { line: number; message: string }
} {
  const tokens: Token[] = []
  const s: LexState = {
    line: 1,
    word: '',
    wordLine: 1,
    inWord: false,
    quote: '',
    escaped: false,
    variable: false,
    needSpace: false,
    comment: false
  }
  const finish = () => {
    tokens.push({ kind: 'word', text: unescape(s.word), line: s.wordLine })
    s.word = ''
    s.inWord = false
  }
  for (const ch of text) {
    const refused = lexChar(s, ch, tokens, finish)
    if (refused) return { tokens, error: { line: s.line, message: refused } }
    if (ch === '\n') s.line++
  }
  if (s.inWord) {
    const message = s.quote ? 'unexpected end of file, unterminated quoted string' : ''
    if (message) return { tokens, error: { line: s.line, message } }
    finish()
  }
  return { tokens }
}

/** One character of ngx_conf_read_token's state machine; returns an error message or ''. */
function lexChar(s: LexState, ch: string, tokens: Token[], finish: () => void): string {
  if (s.comment) {
    if (ch === '\n') s.comment = false
    return ''
  }
  if (s.escaped) {
    s.escaped = false
    s.word += ch
    return ''
  }
  if (s.needSpace) {
    if (SPACE.has(ch)) {
      s.needSpace = false
      return ''
    }
    if (ch === ';' || ch === '{') {
      s.needSpace = false
      tokens.push({ kind: ch, text: ch, line: s.line })
      return ''
    }
    if (ch !== ')') return `unexpected "${ch}"`
    s.needSpace = false
  }
  return s.inWord ? inWord(s, ch, tokens, finish) : betweenWords(s, ch, tokens)
}

function betweenWords(s: LexState, ch: string, tokens: Token[]): string {
  if (SPACE.has(ch)) return ''
  if (ch === ';' || ch === '{' || ch === '}') {
    tokens.push({ kind: ch, text: ch, line: s.line })
    return ''
  }
  if (ch === '#') {
    s.comment = true
    return ''
  }
  s.inWord = true
  s.wordLine = s.line
  s.variable = ch === '$'
  if (ch === '"' || ch === "'") s.quote = ch
  else if (ch === '\\') {
    s.escaped = true
    s.word += ch
  } else s.word += ch
  return ''
}

function inWord(s: LexState, ch: string, tokens: Token[], finish: () => void): string {
  if (ch === '{' && s.variable) {
    s.word += ch
    return ''
  }
  s.variable = ch === '$'
  if (ch === '\\') {
    s.escaped = true
    s.word += ch
    return ''
  }
  if (s.quote) {
    if (ch !== s.quote) {
      s.word += ch
      return ''
    }
    s.quote = ''
    s.needSpace = true
    finish()
    return ''
  }
  if (SPACE.has(ch) || ch === ';' || ch === '{') {
    finish()
    if (ch === ';' || ch === '{') tokens.push({ kind: ch, text: ch, line: s.line })
    return ''
  }
  s.word += ch
  return ''
}

/** Parses one file into directives; a syntax error stops it, as it stops Nginx. */
export function parseFile(
  file: string,
  text: string
): { directives: Directive[]; error?: NginxSyntaxError } {
  const lexed = tokenize(text)
  const stack: Directive[][] = [[]]
  let args: Token[] = []
  const fail = (line: number, message: string) => ({
    directives: stack[0],
    error: { file, line, message }
  })
  for (const token of lexed.tokens) {
    if (token.kind === 'word') {
      args.push(token)
      continue
    }
    if (token.kind === '}') {
      if (args.length > 0 || stack.length === 1) return fail(token.line, 'unexpected "}"')
      stack.pop()
      continue
    }
    if (args.length === 0) return fail(token.line, `unexpected "${token.kind}"`)
    const directive: Directive = {
      name: args[0].text,
      args: args.slice(1).map(a => a.text),
      file,
      line: args[0].line
    }
    stack[stack.length - 1].push(directive)
    if (token.kind === '{') stack.push((directive.block = []))
    args = []
  }
  if (lexed.error) return fail(lexed.error.line, lexed.error.message)
  const lastLine = text.split('\n').length
  if (args.length > 0) return fail(lastLine, 'unexpected end of file, expecting ";" or "}"')
  if (stack.length > 1) return fail(lastLine, 'unexpected end of file, expecting "}"')
  return { directives: stack[0] }
}

/** Whether Nginx expands the include path as a glob (it does when it has `*`, `?` or `[`). */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern)
}

/** POSIX glob matching of one path: `*`, `?`, `[...]` never cross `/` nor match a leading dot. */
export function globMatches(pattern: string, path: string): boolean {
  const patternParts = pattern.split('/')
  const pathParts = path.split('/')
  if (patternParts.length !== pathParts.length) return false
  return patternParts.every((p, i) => segmentMatches(p, pathParts[i]))
}

function segmentMatches(pattern: string, name: string): boolean {
  if (!isGlob(pattern)) return pattern === name
  if (name.startsWith('.') && !pattern.startsWith('.')) return false
  let re = '^'
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]
    const close = ch === '[' ? pattern.indexOf(']', i + 2) : -1
    if (ch === '*') re += '[^/]*'
    else if (ch === '?') re += '[^/]'
    else if (close > 0) {
      const body = pattern
        .slice(i + 1, close)
        .replace(/^!/, '^')
        .replace(/\\/g, '\\\\')
      re += `[${body}]`
      i = close
    } else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`${re}$`).test(name)
}

/** The directory Nginx resolves relative paths against: the main file's directory. */
export function configPrefix(mainPath: string): string {
  const cut = mainPath.lastIndexOf('/')
  return cut > 0 ? mainPath.slice(0, cut) : cut === 0 ? '/' : '/etc/nginx'
}

/** An include argument as the absolute pattern Nginx opens. */
export function includePattern(arg: string, prefix: string): string {
  if (arg.startsWith('/')) return arg
  return `${prefix.replace(/\/$/, '')}/${arg}`
}

/** The files an include pattern names, or why they are not known. */
function includedFiles(
  pattern: string,
  sources: NginxSources
): { paths: string[] } | { missing: true } {
  const expanded = sources.globs?.get(pattern)
  if (expanded) return { paths: [...expanded] }
  if (!isGlob(pattern)) {
    if (sources.files.has(pattern) || sources.unreadable?.has(pattern)) return { paths: [pattern] }
    return { missing: true }
  }
  if (!sources.exhaustive) return { missing: true }
  const paths = [...sources.files.keys()].filter(p => globMatches(pattern, p))
  return { paths: paths.sort() }
}

const MAX_INCLUDE_DEPTH = 32

/** The main file with includes expanded in place, in the order Nginx reads them. */
export function resolveIncludes(sources: NginxSources): NginxTree {
  const prefix = configPrefix(sources.mainPath)
  const tree: NginxTree = {
    mainPath: sources.mainPath,
    prefix,
    directives: [],
    errors: [],
    unresolvedIncludes: [],
    unreadable: []
  }
  const parsed = new Map<string, ReturnType<typeof parseFile>>()
  const readFile = (path: string, depth: number, from?: Directive): Directive[] => {
    const text = sources.files.get(path)
    if (text === undefined) {
      const why = sources.unreadable?.get(path)
      if (why !== undefined) tree.unreadable.push(`${path}: ${why}`)
      else if (!from) tree.unreadable.push(`${path}: not read`)
      else tree.unresolvedIncludes.push(path)
      return []
    }
    if (depth > MAX_INCLUDE_DEPTH) {
      const at = from ?? { file: path, line: 1 }
      tree.errors.push({ file: at.file, line: at.line, message: 'includes nested too deeply' })
      return []
    }
    let result = parsed.get(path)
    if (!result) parsed.set(path, (result = parseFile(path, text)))
    if (result.error && !tree.errors.includes(result.error)) tree.errors.push(result.error)
    return expand(result.directives, depth)
  }
  const expand = (directives: Directive[], depth: number): Directive[] =>
    directives.flatMap(d => {
      if (d.name === 'include') return expandInclude(d, depth)
      return d.block ? [{ ...d, block: expand(d.block, depth) }] : [d]
    })
  const expandInclude = (d: Directive, depth: number): Directive[] => {
    if (d.args.length !== 1) {
      tree.errors.push({ file: d.file, line: d.line, message: 'include takes one argument' })
      return []
    }
    const pattern = includePattern(d.args[0], prefix)
    const found = includedFiles(pattern, sources)
    if ('missing' in found) {
      tree.unresolvedIncludes.push(pattern)
      return []
    }
    return found.paths.flatMap(p => readFile(p, depth + 1, d))
  }
  tree.directives = readFile(sources.mainPath, 0)
  tree.unresolvedIncludes = [...new Set(tree.unresolvedIncludes)]
  tree.unreadable = [...new Set(tree.unreadable)]
  return tree
}

const DUMP_HEADER = /^# configuration file (\/.*):$/gm

/**
 * Splits `nginx -T` output into its files. Nginx prints `# configuration file PATH:`, the
 * file's text, then one newline of its own; the first file is the main one.
 */
export function splitNginxDump(output: string): { mainPath?: string; files: Map<string, string> } {
  const files = new Map<string, string>()
  const headers = [...output.matchAll(DUMP_HEADER)]
  headers.forEach((header, i) => {
    const start = header.index + header[0].length + 1
    const end = i + 1 < headers.length ? headers[i + 1].index : output.length
    const text = output.slice(start, end)
    if (!files.has(header[1])) files.set(header[1], text.endsWith('\n') ? text.slice(0, -1) : text)
  })
  return { mainPath: headers[0]?.[1], files }
}
