// pip-timeout and migrate-timeout: defaults, and whole numbers of seconds
// within bounds, validated like the other numeric inputs.
import { describe, expect, it } from '@jest/globals'
import { readSettings } from '../../src/action/inputs.js'
import { FACTS, inputs } from '../../__fixtures__/inputs.js'

describe('pip-timeout and migrate-timeout', () => {
  it('default to 15 and 30 minutes', () => {
    const s = readSettings(inputs(), FACTS)
    expect(s.pipTimeoutSeconds).toBe(900)
    expect(s.migrateTimeoutSeconds).toBe(1800)
  })

  it('take whole seconds', () => {
    const s = readSettings(inputs({ 'pip-timeout': '60', 'migrate-timeout': ' 7200 ' }), FACTS)
    expect(s.pipTimeoutSeconds).toBe(60)
    expect(s.migrateTimeoutSeconds).toBe(7200)
  })

  it.each([
    ['pip-timeout', '15m'],
    ['pip-timeout', '9'],
    ['pip-timeout', '-60'],
    ['pip-timeout', '1.5'],
    ['migrate-timeout', '0'],
    ['migrate-timeout', '86401'],
    ['migrate-timeout', 'forever']
  ])('rejects %s = %j, naming the input, the value and the rule', (name, value) => {
    expect(() => readSettings(inputs({ [name]: value }), FACTS)).toThrow(
      `Input '${name}' has value ${JSON.stringify(value)}: must be a whole number from 10 to 86400`
    )
  })
})
