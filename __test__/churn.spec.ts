// Map, unmap and map again 100 000 times while old views stay referenced, in a child process
// (node --expose-gc) so that a V8 abort fails this test instead of killing ava.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { makeFile, MiB, tempDir } from './helpers.js'

const ITERATIONS = 100_000
const fixture = fileURLToPath(new URL('./fixtures/churn.cjs', import.meta.url))

interface Usage {
  maps: number
  fileMaps: number
  fds: number
  rss: number
}
interface Phase {
  ms: number
  peak: Usage
  settled: Usage
}

test('100 000 map/unmap cycles with old views referenced: no abort, no leak of mappings, fds or memory', (t) => {
  const file = makeFile(tempDir(), 'churn', 64 * 1024)
  const started = performance.now()
  const out = JSON.parse(
    execFileSync(process.execPath, ['--expose-gc', fixture, file, String(ITERATIONS)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    }),
  ) as { before: Usage; yielding: Phase; burst: Phase; burst2: Phase; kept: number; detached: boolean; distinctAddresses: number }
  const seconds = (performance.now() - started) / 1000
  const mb = (n: number) => (n / MiB).toFixed(1)
  const { before, yielding, burst, burst2 } = out
  t.log(
    `${ITERATIONS} cycles: ${yielding.ms} ms yielding, ${burst.ms} ms in one burst (${burst2.ms} ms for half); ` +
      `maps ${before.maps} -> ${burst2.settled.maps} lines, fds ${before.fds} -> ${burst2.settled.fds}, ` +
      `RSS ${mb(before.rss)} -> ${mb(yielding.settled.rss)} (yielding) -> ${mb(burst.peak.rss)} (burst) -> ` +
      `${mb(burst2.settled.rss)} MiB (second burst); ${out.distinctAddresses} distinct addresses (reused at once); ` +
      `child ran ${seconds.toFixed(1)} s`,
  )
  t.is(out.kept, 3 * (2 * ITERATIONS + ITERATIONS / 2) / 100)
  t.true(out.detached, 'every kept view was detached by its unmap()')
  for (const phase of [yielding, burst, burst2]) {
    t.is(phase.settled.fileMaps, 0, 'no mapping of the file is left')
    t.is(phase.settled.fds, before.fds, 'no fd is left open')
    // A handful of lines come and go with V8's heap (it holds 7 500 kept views); none per cycle.
    t.true(phase.settled.maps - before.maps <= 48, `maps lines ${before.maps} -> ${phase.settled.maps}`)
  }
  // Yielding to the event loop lets the external buffers' finalizers run as it goes.
  t.true(yielding.settled.rss - before.rss < 32 * MiB, `RSS grew ${mb(yielding.settled.rss - before.rss)} MiB`)
  // A synchronous burst defers every finalizer (Node-API runs them on a later turn): the peak is
  // under 1 KiB per pending mapping, and the memory is reused, not leaked, by the next burst.
  t.true(burst.peak.rss - before.rss < ITERATIONS * 1024, `burst peak ${mb(burst.peak.rss - before.rss)} MiB`)
  t.true(
    burst2.settled.rss - burst.settled.rss < 16 * MiB,
    `second burst grew RSS by ${mb(burst2.settled.rss - burst.settled.rss)} MiB`,
  )
})
