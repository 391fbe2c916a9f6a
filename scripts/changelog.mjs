// The CHANGELOG steps of a release (used by .github/workflows/release.yml):
//   node scripts/changelog.mjs release X.Y.Z YYYY-MM-DD [FILE]  the "Unreleased" section becomes
//       "X.Y.Z - YYYY-MM-DD" and a new, empty "Unreleased" goes above it; refused when
//       Unreleased lists no change, or X.Y.Z is there already
//   node scripts/changelog.mjs notes X.Y.Z [FILE]               prints that version's section
// FILE defaults to CHANGELOG.md. Exits 1 with a message when it cannot.
import { readFileSync, writeFileSync } from 'node:fs'

const UNRELEASED = '## Unreleased'
const EMPTY = 'Nothing yet.'

function fail(message) {
  console.error(`changelog: ${message}`)
  process.exit(1)
}

/** The body of the `## heading` section: from after its line to the next `## `. */
function section(text, heading) {
  const start = text.indexOf(`\n${heading}\n`)
  if (start < 0) return undefined
  const from = start + heading.length + 2
  const end = text.indexOf('\n## ', from)
  return { start: start + 1, from, end: end < 0 ? text.length : end + 1 }
}

function release(text, version, date) {
  if (!/^\d+\.\d+\.\d+$/.test(version)) fail(`version must be X.Y.Z, got '${version}'`)
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) fail(`date must be YYYY-MM-DD, got '${date}'`)
  if (new RegExp(`\\n## ${version.replace(/\./g, '\\.')} - `).test(text))
    fail(`${version} has a section already`)
  const unreleased = section(text, UNRELEASED)
  if (!unreleased) fail(`no "${UNRELEASED}" section`)
  if (!/^- /m.test(text.slice(unreleased.from, unreleased.end)))
    fail(`"${UNRELEASED}" lists no change: nothing to release`)
  return (
    text.slice(0, unreleased.start) +
    `${UNRELEASED}\n\n${EMPTY}\n\n## ${version} - ${date}\n` +
    text.slice(unreleased.from)
  )
}

function notes(text, version) {
  const heading = text.match(new RegExp(`^## ${version.replace(/\./g, '\\.')} - .*$`, 'm'))
  if (!heading) fail(`no section for ${version}`)
  const found = section(text, heading[0])
  return text.slice(found.from, found.end).trim() + '\n'
}

const [command, version, ...rest] = process.argv.slice(2)
if (command === 'release') {
  const file = rest[1] ?? 'CHANGELOG.md'
  writeFileSync(file, release(readFileSync(file, 'utf8'), version ?? '', rest[0] ?? ''))
} else if (command === 'notes') {
  process.stdout.write(notes(readFileSync(rest[0] ?? 'CHANGELOG.md', 'utf8'), version ?? ''))
} else {
  fail('usage: changelog.mjs release X.Y.Z YYYY-MM-DD [FILE] | notes X.Y.Z [FILE]')
}
