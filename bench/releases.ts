// The releases the benchmark deploys besides examples/app itself: one that is slow to
// import, and two that break only once traffic reaches them (each a copy of examples/app).
import * as path from 'node:path'
import { appCopy, appendTo, prependTo } from '../__tests__/integration/kit.js'

/** The slow release's import time (`time.sleep` at import). */
export const SLOW_IMPORT_SECONDS = 4

/** A release whose import sleeps, as an app that loads much at import does. */
export function slowApp(): string {
  return appCopy(dir =>
    prependTo(
      path.join(dir, 'wsgi.py'),
      `import time\n\ntime.sleep(${SLOW_IMPORT_SECONDS})  # a slow import (bench)\n`
    )
  )
}

/** Bigger than Nginx's proxy_buffer_size (4k or 8k), smaller than an HTTP client's 16 KiB limit. */
const HEADER_BYTES = 10_000

/** A release that fails after the switch; nothing before it can tell. */
export interface BrokenRelease {
  name: string
  /** what it does, for the results */
  what: string
  source: () => string
}

export const BROKEN_RELEASES: BrokenRelease[] = [
  {
    name: 'too big a header',
    what:
      `every answer carries a ${HEADER_BYTES.toLocaleString('en')}-byte header: Gunicorn's own socket answers 200, ` +
      `Nginx answers 502 ("upstream sent too big header", over its proxy_buffer_size)`,
    source: () =>
      appCopy(dir =>
        appendTo(
          path.join(dir, 'wsgi.py'),
          `\n\n@app.after_request\ndef big_header(response):  # breaks the path through Nginx (bench)\n` +
            `    response.headers["X-Padding"] = "x" * ${HEADER_BYTES}\n    return response\n`
        )
      )
  },
  {
    name: 'workers fail to boot',
    what:
      'imports fine on its own (the import check and the migrations pass), but raises when imported ' +
      'in a Gunicorn worker: the workers exit with a boot error and the master exits',
    source: () =>
      appCopy(dir =>
        prependTo(
          path.join(dir, 'wsgi.py'),
          `import sys\n\nif "gunicorn" in sys.modules:  # fails to boot under Gunicorn only (bench)\n` +
            `    raise RuntimeError("this release cannot boot in a Gunicorn worker (bench)")\n`
        )
      )
  }
]
