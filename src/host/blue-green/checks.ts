// The host checks that only blue-green has: both instances exist as one
// template, each runs its own slot on its own socket, live.sock points at one
// of them, and Nginx reaches live.sock without pooling connections (a pooled
// connection keeps reaching the old instance after the switch).
import type { Finding } from '../../core/host-result.js'
import type { HostFacts } from '../host-facts.js'
import { COLOURS, slotPath, type Colour } from './instances.js'

const finding = (severity: Finding['severity'], finding: string, fix = ''): Finding => ({
  severity,
  check: 'blue-green',
  finding,
  fix
})

/** The instances, slots and live.sock; nothing to say when the host is not blue-green. */
export function blueGreenLayout(f: HostFacts): Finding[] {
  const bg = f.blueGreen
  if (!bg) return []
  const template = `/etc/systemd/system/${bg.template}@.service`
  const out: Finding[] = []
  for (const c of COLOURS) {
    const i = bg.instances[c]
    if (i.info.loadState !== 'loaded') {
      out.push(
        finding(
          'error',
          `${i.unit} is not loaded (LoadState=${i.info.loadState || 'unknown'}): strategy blue-green runs ${bg.template}@blue and ${bg.template}@green from one template unit`,
          `install ${template} (see the server kit's blue-green/ folder) and run systemctl daemon-reload`
        )
      )
      continue
    }
    const slot = slotPath(f.layout, c)
    const chdir = i.gunicorn.chdir ?? i.info.workingDirectory
    if (i.gunicorn.launcher.kind !== 'unknown' && chdir !== slot)
      out.push(
        finding(
          'error',
          `${i.unit} starts in ${chdir || '(no --chdir)'}, not in its slot ${slot}: it would not run the release the action pins for it`,
          `start Gunicorn with --chdir ${f.layout.root}/slots/%i in ${template}`
        )
      )
    if (!i.socket && i.gunicorn.launcher.kind === 'unknown')
      out.push(
        finding(
          'error',
          `${i.unit}'s ExecStart (${i.info.execStart.join(' ')}) does not show Gunicorn's command line, so its socket cannot be read: live.sock has to be pointed at it`,
          `start Gunicorn directly in ${template}: ExecStart=<venv>/bin/gunicorn --chdir ${f.layout.root}/slots/%i --bind unix:/run/${bg.template}-%i/gunicorn.sock …`
        )
      )
    else if (!i.socket)
      out.push(
        finding(
          'error',
          `${i.unit} binds ${i.gunicorn.binds.map(b => b.text).join(', ') || "Gunicorn's default 127.0.0.1:8000"}, not a unix socket of its own: live.sock can only point at a socket`,
          `bind unix:/run/${bg.template}-%i/gunicorn.sock with RuntimeDirectory=${bg.template}-%i in ${template}`
        )
      )
  }
  if (out.length > 0) return out
  const { blue, green } = bg.instances
  if (blue.socket === green.socket)
    return [
      finding(
        'error',
        `${blue.unit} and ${green.unit} both bind ${blue.socket}: the instances must not share a socket`,
        `name the instance in the socket path (%i), e.g. unix:/run/${bg.template}-%i/gunicorn.sock`
      )
    ]
  if (bg.liveTarget !== undefined && bg.live === undefined)
    return [
      finding(
        'error',
        `${bg.liveLink} points at ${bg.liveTarget}, which is neither ${blue.unit}'s socket (${blue.socket}) nor ${green.unit}'s (${green.socket})`,
        `point it at the instance that should serve: ln -sfn ${blue.socket} ${bg.liveLink}.tmp && mv -T ${bg.liveLink}.tmp ${bg.liveLink}`
      )
    ]
  for (const c of COLOURS) {
    const i = bg.instances[c]
    if (i.slotTarget !== undefined && i.slotRelease === undefined)
      out.push(
        finding(
          'error',
          `${slotPath(f.layout, c)} points at ${i.slotTarget}, not at ${f.layout.releasesDir}/<id>`,
          `remove it while ${i.unit} is stopped; the next deploy writes it`
        )
      )
  }
  if (out.length > 0) return out
  return [finding('ok', describeInstances(f, bg.live))]
}

function describeInstances(f: HostFacts, live: Colour | undefined): string {
  const bg = f.blueGreen
  if (!bg) return ''
  const parts = COLOURS.map(c => {
    const i = bg.instances[c]
    const state = i.info.activeState === 'active' ? 'running' : i.info.activeState || 'unknown'
    return `${i.unit} ${state}${i.slotRelease ? ` on ${i.slotRelease}` : ''}${c === live ? ' (live)' : ''}`
  })
  return `${parts.join(', ')}; live.sock ${bg.liveTarget ? `-> ${bg.liveTarget}` : 'not created yet (first deploy)'}`
}

/** Upstream keepalive keeps cached connections to the old instance after live.sock moves. */
export function pooledUpstream(f: HostFacts): Finding[] {
  if (!f.blueGreen || f.nginx.kind !== 'match' || f.nginx.keepalive.length === 0) return []
  const pools = f.nginx.keepalive.map(k => `${k.upstream} (keepalive ${k.connections})`).join(', ')
  return [
    finding(
      'error',
      `Nginx reaches ${f.blueGreen.liveLink} through upstream ${pools}: pooled connections keep going to the old instance after the switch (measured: for up to 1.2 s, and POSTs in flight failed with 502 when it stopped)`,
      `proxy to it directly, without keepalive: proxy_pass http://unix:${f.blueGreen.liveLink};`
    )
  ]
}
