// A command's output as the action keeps it: at most a fixed number of bytes
// per stream, the newest (the tail says what failed). What is cut is counted,
// and the kept text begins with a line saying how much.

/** Bytes of stdout, and of stderr, kept per command unless it asks for more. */
export const DEFAULT_MAX_OUTPUT_BYTES = 4 << 20

/** The line that replaces what was cut from the start of a command's output. */
export function cutNotice(bytes: number): string {
  return `[zdd: ${bytes} bytes of earlier output cut]`
}

export class OutputTail {
  private chunks: Buffer[] = []
  private size = 0
  private dropped = 0
  /** Whether the kept bytes begin a line (the last byte cut was a line break). */
  private atLineStart = true

  constructor(private readonly max = DEFAULT_MAX_OUTPUT_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.size += chunk.length
    // Compacted now and then, not on every chunk: memory stays below twice the limit.
    if (this.size > this.max * 2) this.compact()
  }

  private compact(): void {
    const all = Buffer.concat(this.chunks)
    const from = all.length - this.max
    const keep = Buffer.from(all.subarray(from))
    this.atLineStart = all[from - 1] === 0x0a
    this.dropped += from
    this.chunks = [keep]
    this.size = keep.length
  }

  /** Bytes cut from the start so far (the text's notice counts a partial first line too). */
  get cut(): number {
    return this.dropped + Math.max(0, this.size - this.max)
  }

  /** The text kept: whole, or the tail from a line start after the notice of what was cut. */
  text(): string {
    let all = Buffer.concat(this.chunks)
    let dropped = this.dropped
    let atLineStart = this.atLineStart
    if (all.length > this.max) {
      const cut = all.length - this.max
      atLineStart = all[cut - 1] === 0x0a
      dropped += cut
      all = all.subarray(cut)
    }
    if (dropped === 0) return all.toString()
    // Start at a line start, or at least at a whole UTF-8 character.
    const newline = atLineStart ? -1 : all.indexOf(0x0a)
    let from = newline >= 0 && newline < all.length - 1 ? newline + 1 : 0
    while (from < all.length && (all[from] & 0xc0) === 0x80) from++
    return `${cutNotice(dropped + from)}\n${all.subarray(from).toString()}`
  }
}
