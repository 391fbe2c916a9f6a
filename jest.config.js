// Two projects: `unit` (pure logic, fakes from __fixtures__) and `integration`
// (real systemd-nspawn hosts from hostkit/, run as root).
// TypeScript through ts-jest; the remote Python helper imported as text, as the
// bundle's esbuild `text` loader does.
const tsJest = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  '^.+\\.py$': '<rootDir>/scripts/jest-text-transform.cjs'
}
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: tsJest,
  testEnvironment: 'node'
}
export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/__tests__/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/__tests__/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/__tests__/integration/global-setup.js',
      globalTeardown: '<rootDir>/__tests__/integration/global-teardown.js'
    }
  ],
  testTimeout: 120000,
  reporters: ['default', ['<rootDir>/scripts/count-reporter.cjs', {}]]
}
