// Jest reporter that writes the real pass/fail counts to .test-results/counts.json,
// from which .ci/run prints its `tests: N passed, N failed` line.
const fs = require('node:fs')
const path = require('node:path')

class CountReporter {
  onRunComplete(_contexts, results) {
    const dir = path.join(process.cwd(), '.test-results')
    fs.mkdirSync(dir, { recursive: true })
    const failedSuites =
      results.numFailedTestSuites - results.testResults.filter(r => r.numFailingTests > 0).length
    fs.writeFileSync(
      path.join(dir, 'counts.json'),
      JSON.stringify({
        passed: results.numPassedTests,
        // A suite that failed to run (e.g. a setup error) counts as one failure.
        failed: results.numFailedTests + Math.max(0, failedSuites),
        skipped: results.numPendingTests + results.numTodoTests
      }) + '\n'
    )
  }
}
module.exports = CountReporter
