// An error that says what is wrong and how to fix it as two fields, so a reader
// (a finding, a report) takes each as it is instead of splitting the message.
// The message joins them for whoever shows the error as text.

export class FixableError extends Error {
  constructor(
    /** What is wrong. */
    override readonly cause: string,
    /** How to fix it; undefined when the cause already names a fix for each problem. */
    readonly fix?: string
  ) {
    super(fix === undefined ? cause : `${cause}\nFix: ${fix}`)
    this.name = 'FixableError'
  }
}
