import { describe, expect, it } from '@jest/globals'
import { parseTarget, splitList } from '../../src/core/targets.js'

const D = { user: 'deploy', port: 22 }

describe('parseTarget', () => {
  it('fills defaults and keeps explicit user and port', () => {
    expect(parseTarget('web1', D)).toEqual({
      user: 'deploy',
      host: 'web1',
      port: 22,
      label: 'deploy@web1:22'
    })
    expect(parseTarget('ops@10.0.0.1:2222', D)).toEqual({
      user: 'ops',
      host: '10.0.0.1',
      port: 2222,
      label: 'ops@10.0.0.1:2222'
    })
    expect(parseTarget('[2001:db8::1]:22', D)?.host).toBe('2001:db8::1')
  })

  it('splits on newlines and commas, dropping blanks', () => {
    expect(splitList(' a ,\n\nb,, c\n')).toEqual(['a', 'b', 'c'])
  })
})
