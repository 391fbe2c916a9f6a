// Builds an InputReader from a map, the way the runner fills INPUT_* variables.
import type { InputReader, RunFacts } from '../src/action/inputs.js'

export const TEST_KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n'
export const TEST_FINGERPRINT = 'SHA256:' + 'A'.repeat(43)

export const VALID_INPUTS: Record<string, string> = {
  host: 'app1.example.com',
  'private-key': TEST_KEY,
  'host-fingerprint': TEST_FINGERPRINT,
  service: 'myapp',
  'release-path': '/srv/myapp',
  'health-url': 'http://127.0.0.1/health'
}

export function inputs(overrides: Record<string, string> = {}): InputReader {
  const all = { ...VALID_INPUTS, ...overrides }
  return name => all[name] ?? ''
}

export const FACTS: RunFacts = {
  sha: '0123456789abcdef0123456789abcdef01234567',
  now: new Date('2026-11-25T03:15:00.123Z'),
  workspace: '/home/runner/work/app'
}
