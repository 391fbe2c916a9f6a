// `mode: deploy` on one host: upload, switch `current`, reload, and report
// what health-url answers.
import { createArchive, type ReleaseMetadata } from './release-archive.js'
import { httpGet } from './http-over-ssh.js'
import { newHostResult, timed, type HostResult } from './host-result.js'
import type { Log } from './log.js'
import {
  ReleaseLayout,
  readCurrentRelease,
  removeIncoming,
  switchCurrent,
  uploadRelease
} from './release-layout.js'
import { runStep } from './remote-command.js'
import type { RunContext } from './run-context.js'
import type { Settings } from './settings.js'
import { toShell } from './shell-quote.js'
import type { RemoteHost } from './ssh-connection.js'
import { parseUnitShow, UNIT_PROPERTIES } from './unit-info.js'

export interface DeployContext {
  settings: Settings
  run: RunContext
  log: Log
}

export async function deployHost(remote: RemoteHost, ctx: DeployContext): Promise<HostResult> {
  const { settings, log } = ctx
  const result = newHostResult(remote.target.label)
  const layout = new ReleaseLayout(settings.releasePath)
  const id = settings.releaseId
  result.release = id

  await timed(result, 'preflight', () =>
    log.group('Preflight', async () => {
      const show = await runStep(
        remote,
        'read the unit',
        toShell([
          'systemctl',
          'show',
          settings.service,
          '--no-pager',
          ...UNIT_PROPERTIES.map(p => `--property=${p}`)
        ])
      )
      const unit = parseUnitShow(show.stdout)
      if (unit.loadState !== 'loaded')
        throw new Error(
          `unit ${settings.service} is not loaded (LoadState=${unit.loadState || 'unknown'})`
        )
      if (unit.activeState !== 'active')
        throw new Error(`unit ${settings.service} is not active (ActiveState=${unit.activeState})`)
      result.previousRelease = await readCurrentRelease(remote, layout)
      log.info(
        `unit ${settings.service} active, MainPID ${unit.mainPid}; current release: ${result.previousRelease ?? '(none)'}`
      )
    })
  )

  await timed(result, 'upload', () =>
    log.group(`Upload release ${id}`, async () => {
      const metadata: ReleaseMetadata = {
        id,
        sha: ctx.run.sha,
        actor: ctx.run.actor,
        run: ctx.run.runUrl,
        time: new Date().toISOString()
      }
      const archive = createArchive(settings.source, metadata)
      try {
        await Promise.all([uploadRelease(remote, layout, id, archive.stream), archive.done])
      } catch (error) {
        await removeIncoming(remote, layout, id)
        throw error
      }
      log.info(`uploaded ${settings.source} to ${layout.release(id)}`)
    })
  )

  await timed(result, 'switch', async () => {
    await switchCurrent(remote, layout, id)
    log.info(`current -> releases/${id}`)
  })

  await timed(result, 'reload', async () => {
    await runStep(
      remote,
      'reload the service',
      toShell(['sudo', '-n', 'systemctl', 'reload', settings.service])
    )
    log.info(`sent HUP through systemctl reload ${settings.service}`)
  })

  await timed(result, 'health', async () => {
    const response = await httpGet(remote, settings.healthUrl)
    result.health = `${response.status} ${response.body.slice(0, 200).trim()}`
    log.info(`${settings.healthUrl.text} answered ${result.health}`)
    if (response.status < 200 || response.status > 299)
      throw new Error(`health-url answered ${response.status}`)
  })

  result.status = 'deployed'
  return result
}
