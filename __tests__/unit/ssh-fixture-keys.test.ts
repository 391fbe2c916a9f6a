import { describe, expect, it } from '@jest/globals'
import ssh2 from 'ssh2'
import { keyPair } from '../../__fixtures__/ssh-server.js'

describe('the test SSH servers’ keys', () => {
  it('always parse: the ed25519 pairs ssh2 writes malformed (about 1 in 256) are generated again', () => {
    // 2,000 raw pairs hold a malformed one with a probability above 99.9 %
    const unparsable = Array.from({ length: 2000 }, () => keyPair('ed25519')).filter(
      k => ssh2.utils.parseKey(k.private) instanceof Error
    )
    expect(unparsable).toEqual([])
  })
})
