import { describe, expect, it } from '@jest/globals'
import { grantOf, passwordRules, sudoAllows, sudoersFile } from '../../src/host/access.js'
import { RIGHTS } from '../../src/host/service-commands.js'

// The kit's rules, less start, stop, nginx -T and sudo ps (needed only where /proc hides processes).
const requiredSudo = (unit: string) =>
  RIGHTS.filter(r => !['start', 'stop', 'nginx-dump', 'ps'].includes(r.right)).map(r => [
    r.grant(unit).replace(' *', ' 1')
  ])

describe('sudoAllows', () => {
  const listing = `User deploy may run the following commands on web1:
    (root) NOPASSWD: /usr/bin/systemctl reload myapp, /usr/bin/systemctl restart myapp, /usr/bin/systemctl daemon-reload, /usr/sbin/nginx -t, /usr/bin/pwdx *`

  it('grants exactly the listed commands, with * as a trailing wildcard', () => {
    for (const [command] of requiredSudo('myapp'))
      expect([command, sudoAllows(listing, command)]).toEqual([command, true])
    expect(sudoAllows(listing, 'pwdx 1 2 3')).toBe(true)
    expect(sudoAllows(listing, 'systemctl reload otherapp')).toBe(false)
    expect(sudoAllows(listing, 'systemctl stop myapp')).toBe(false)
  })

  it('reads rules sudo wrapped at the terminal width (aliases come expanded)', () => {
    const wrapped = [
      'User deploy may run the following commands on web1:',
      '    (root) NOPASSWD: /usr/bin/systemctl reload myapp, /usr/bin/systemctl',
      '        restart myapp, /usr/bin/systemctl daemon-reload, /usr/bin/journalctl -u myapp',
      '        --no-pager *, /usr/sbin/nginx -t, /usr/bin/pwdx *'
    ].join('\n')
    for (const [command] of requiredSudo('myapp'))
      expect([command, sudoAllows(wrapped, command)]).toEqual([command, true])
    expect(sudoAllows(wrapped, 'systemctl reload otherapp')).toBe(false)
  })

  it('treats ALL as everything and a password rule as nothing', () => {
    expect(sudoAllows('    (ALL : ALL) NOPASSWD: ALL', 'systemctl reload myapp')).toBe(true)
    expect(sudoAllows('    (ALL : ALL) ALL', 'systemctl reload myapp')).toBe(false)
  })
})

describe('grantOf: sudo -n -l COMMAND and the listing', () => {
  const nopasswd = `User deploy may run the following commands on web1:
    (root) NOPASSWD: /usr/bin/systemctl reload myapp, /usr/bin/systemctl restart myapp`
  const mixed = `${nopasswd}\n    (ALL) ALL`

  it('is yes when sudo permits it and no rule asks for a password', () => {
    expect(passwordRules(nopasswd)).toEqual([])
    expect(grantOf(true, nopasswd, 'systemctl reload myapp')).toBe('yes')
  })

  it('is no when sudo refuses, or permits it only through a rule that asks for a password', () => {
    expect(grantOf(false, nopasswd, 'systemctl stop myapp')).toBe('no')
    expect(passwordRules(mixed)).toEqual(['(ALL) ALL'])
    expect(grantOf(true, mixed, 'systemctl stop myapp')).toBe('no')
  })

  it('is unknown when both a NOPASSWD grant and a password rule match (sudo takes the last)', () => {
    expect(grantOf(true, mixed, 'systemctl reload myapp')).toBe('unknown')
  })
})

describe('sudoersFile', () => {
  it('names a drop-in sudo reads: no dot in the file name', () => {
    expect(sudoersFile('deploy', 'myapp')).toBe('/etc/sudoers.d/deploy-myapp')
    expect(sudoersFile('deploy', 'myapp.service')).toBe('/etc/sudoers.d/deploy-myapp')
    expect(sudoersFile('deploy', 'shop.v2.service')).toBe('/etc/sudoers.d/deploy-shop_v2')
  })
})
