// The blue-green layout on a host: two instances of one template unit
// (`<template>@blue`, `<template>@green`), each running the release its slot
// (`<release-path>/slots/<colour>`) pointed at when it started, on its own
// socket; and `<release-path>/live.sock`, the symlink Nginx connects through,
// pointing at the live instance's socket. Read here in one round trip.
import { isReleaseId } from '../../core/release-id.js'
import type { ReleaseLayout } from '../release-layout.js'
import { readGunicornOptions, readUnit } from '../service-state.js'
import { socketOf } from '../gunicorn/bind.js'
import type { GunicornCommand, UnitInfo } from '../gunicorn/unit-info.js'
import { runStep } from '../../transport/remote-command.js'
import { toShell } from '../../transport/shell-quote.js'
import type { RemoteHost } from '../../transport/ssh-connection.js'

export type Colour = 'blue' | 'green'
export const COLOURS: readonly Colour[] = ['blue', 'green']

export const otherColour = (c: Colour): Colour => (c === 'blue' ? 'green' : 'blue')
export const instanceUnit = (template: string, c: Colour): string => `${template}@${c}`
export const slotPath = (layout: ReleaseLayout, c: Colour): string => `${layout.root}/slots/${c}`
export const liveLink = (layout: ReleaseLayout): string => `${layout.root}/live.sock`

export interface Instance {
  colour: Colour
  unit: string
  info: UnitInfo
  gunicorn: GunicornCommand
  /** The socket it binds (`--bind unix:...` of its ExecStart), when it binds one. */
  socket?: string
  /** The release its slot points at (undefined: no slot yet). */
  slotRelease?: string
  /** The slot's target as written (readlink). */
  slotTarget?: string
}

export interface BlueGreenLayout {
  template: string
  /** `<release-path>/live.sock` */
  liveLink: string
  /** Where live.sock points (readlink); undefined when it does not exist. */
  liveTarget?: string
  /** The instance whose socket live.sock points at. */
  live?: Colour
  instances: Record<Colour, Instance>
}

/**
 * Whether the instance runs the interpreter of its own slot's release
 * (`<release-path>/slots/%i/.venv/bin/python`): each release has its own environment.
 */
export function runsSlotVenv(layout: ReleaseLayout, instance: Instance): boolean {
  return (instance.info.execStart[0] ?? '').startsWith(`${slotPath(layout, instance.colour)}/`)
}

/** The instance that serves: the live one, else (nothing switched yet) blue. */
export function servingColour(bg: BlueGreenLayout): Colour {
  return bg.live ?? 'blue'
}

/** The first unix socket (absolute path) the instance binds. */
function socketOfInstance(g: GunicornCommand): string | undefined {
  return g.binds.map(socketOf).find(s => s !== undefined)
}

/** The release a slot names: `../releases/<id>` or `<release-path>/releases/<id>`, nothing else. */
function releaseOfLink(target: string | undefined, layout: ReleaseLayout): string | undefined {
  if (!target) return undefined
  const trimmed = target.replace(/\/+$/, '')
  for (const dir of ['../releases/', `${layout.releasesDir}/`])
    if (trimmed.startsWith(dir)) {
      const id = trimmed.slice(dir.length)
      return isReleaseId(id) ? id : undefined
    }
  return undefined
}

/** readlink of live.sock and both slots (empty text: not a link). */
async function readLinks(
  remote: RemoteHost,
  layout: ReleaseLayout
): Promise<Record<string, string | undefined>> {
  const paths = [liveLink(layout), ...COLOURS.map(c => slotPath(layout, c))]
  // One line per path: its target, or nothing when it is not a symlink.
  const result = await runStep(
    remote,
    'read the blue-green links',
    toShell(['sh', '-c', 'for p; do printf "%s\\n" "$(readlink -- "$p")"; done', 'sh', ...paths])
  )
  const lines = result.stdout.split('\n')
  return Object.fromEntries(paths.map((p, i) => [p, lines[i] || undefined]))
}

async function readInstance(
  remote: RemoteHost,
  template: string,
  colour: Colour
): Promise<Omit<Instance, 'slotRelease' | 'slotTarget'>> {
  const unit = instanceUnit(template, colour)
  const info = await readUnit(remote, unit)
  const gunicorn = await readGunicornOptions(remote, info)
  return { colour, unit, info, gunicorn, socket: socketOfInstance(gunicorn) }
}

export async function readBlueGreen(
  remote: RemoteHost,
  template: string,
  layout: ReleaseLayout
): Promise<BlueGreenLayout> {
  const [links, blue, green] = await Promise.all([
    readLinks(remote, layout),
    readInstance(remote, template, 'blue'),
    readInstance(remote, template, 'green')
  ])
  const withSlot = (i: Omit<Instance, 'slotRelease' | 'slotTarget'>): Instance => {
    const slotTarget = links[slotPath(layout, i.colour)]
    return { ...i, slotTarget, slotRelease: releaseOfLink(slotTarget, layout) }
  }
  const instances = { blue: withSlot(blue), green: withSlot(green) }
  const liveTarget = links[liveLink(layout)]
  const live = COLOURS.find(c => liveTarget !== undefined && instances[c].socket === liveTarget)
  return { template, liveLink: liveLink(layout), liveTarget, live, instances }
}
