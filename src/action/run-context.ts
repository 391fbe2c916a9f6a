// The one module that reads the workflow run's context (@actions/github).
import * as github from '@actions/github'
import type { RunContext } from '../core/run-stamp.js'

export function readRunContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  const ctx = github.context
  const server = env.GITHUB_SERVER_URL || 'https://github.com'
  const repo = env.GITHUB_REPOSITORY || ''
  const runUrl = repo && ctx.runId ? `${server}/${repo}/actions/runs/${ctx.runId}` : 'local'
  return {
    sha: ctx.sha || env.GITHUB_SHA || '',
    actor: ctx.actor || env.GITHUB_ACTOR || 'unknown',
    runUrl,
    workspace: env.GITHUB_WORKSPACE || process.cwd()
  }
}
