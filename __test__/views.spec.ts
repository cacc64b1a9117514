// view() does constant work per call, amortised: the list of buffers unmap() must detach is
// pruned of collected ones only when it has doubled, so it stays within twice the buffers
// alive at the last prune. Checked through pmem2's test-only counters, not by timing.
import test from 'ava'
import { setImmediate as tick } from 'node:timers/promises'

import { mapFile } from '../index.mjs'
import { internals, kernelMappings, makeFile, MiB, tempDir } from './helpers.js'

const gc = globalThis.gc as () => void

const KEPT = 1000
const SHORT_LIVED = 200_000
const GC_EVERY = 1000
const MIN_PRUNE = 64

test('200 000 short-lived views beside 1000 kept ones: tracked stays within 2 x live + a constant', async (t) => {
  const mapping = mapFile(makeFile(tempDir(), 'views', MiB))
  const kept = Array.from({ length: KEPT }, (_, i) => mapping.view(i * 1024, 16))
  // Between two collections at most GC_EVERY views are garbage yet uncollected.
  const bound = 2 * (KEPT + GC_EVERY) + MIN_PRUNE
  let highest = 0
  for (let i = 0; i < SHORT_LIVED; i++) {
    mapping.view((i % 1024) * 1024, 16)[0] = i & 0xff
    if (i % GC_EVERY === GC_EVERY - 1) gc()
    highest = Math.max(highest, internals.counts(mapping).tracked)
  }
  t.log(`highest tracked count ${highest} (bound ${bound}) over ${SHORT_LIVED} views`)
  t.true(highest <= bound, `tracked reached ${highest}`)
  for (let i = 0; i < 4; i++) {
    gc()
    await tick() // finalizers of the collected views
  }
  t.is(internals.counts(mapping).outstanding, KEPT, 'only the kept views are outstanding')
  // Pruning never dropped a live view: unmap() detaches every kept one and the range goes.
  const address = mapping.address
  mapping.unmap()
  t.true(kept.every((view) => view.length === 0))
  t.deepEqual(kernelMappings(address, MiB), [])
})
