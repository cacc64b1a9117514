// Memory that escaped detaching (a BYOB stream read, ArrayBuffer.prototype.transfer(), a
// buffer posted to a worker) keeps its address range reserved after unmap() until Node
// finalizes it, even when every original object over it was collected first. Checked against
// the kernel (/proc/self/maps) and the files (read with fs), on Node 20 and Node 24.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { mapFile } from '../index.mjs'
import { internals, kernelMappings, makeFile, MiB, tempDir, node24 } from './helpers.js'

const dir = tempDir()
const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = path.join(root, '__test__', 'fixtures', 'escaped.cjs')
const gc = globalThis.gc as () => void

// Node 24 from the npm registry, installed on first use (helpers.ts); its tests skip with one line
// where it cannot be had, except under CI.
const NODE24 = node24()
const node24Bin = (): string => NODE24!
const testOn = (name: string) => (name.startsWith('Node 24') && !NODE24 ? test.skip : test)

interface Escape {
  node: string
  linesAfterUnmap: string[]
  anonymousAfterUnmap: boolean
  fileA: string
  reused: boolean
  laterSee: string[]
  fileB: string
  fileAAfterReuse: string
  linesWhileReachable: number
  linesAfterCollect: number
  countsBeforeUnmap?: { tracked: number; outstanding: number }
}

let runs = 0
function run(node: string, mode: string): { out: Escape; before: string } {
  runs += 1
  const fileA = makeFile(dir, `a${runs}`, MiB)
  const fileB = makeFile(dir, `b${runs}`, MiB)
  const out = JSON.parse(
    execFileSync(node, ['--expose-gc', fixture, fileA, fileB, mode], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  ) as Escape
  // The BYOB source writes 0x7a into the view before the escape; a transfer writes nothing.
  return { out, before: mode.endsWith('byob') ? '7a00000000000000' : '0000000000000000' }
}

const ZERO = '0000000000000000'

const cases: Array<[string, () => string, string]> = [
  ['Node 20: BYOB stream read', () => process.execPath, 'byob'],
  ['Node 24: BYOB stream read', node24Bin, 'byob'],
  ['Node 24: view().buffer.transfer()', node24Bin, 'transfer'],
  ['Node 20: BYOB memory posted to a worker', () => process.execPath, 'worker-byob'],
  ['Node 24: transferred memory posted to a worker', node24Bin, 'worker-transfer'],
]

for (const [name, node, mode] of cases) {
  testOn(name)(`${name}, originals collected: unmap() leaves the range anonymous, stores reach neither file nor a newer mapping`, (t) => {
    const { out, before } = run(node(), mode)
    const what = JSON.stringify(out)
    t.true(out.anonymousAfterUnmap, `the range is private anonymous memory after unmap(): ${what}`)
    t.is(out.fileA, before, `stores after unmap() are not in the file: ${what}`)
    t.is(out.fileAAfterReuse, before, what)
    t.false(out.reused, `no mapping is placed over the reserved range: ${what}`)
    t.deepEqual(out.laterSee, [ZERO], `newer mappings do not see the stores: ${what}`)
    t.is(out.fileB, ZERO, `the other file is untouched: ${what}`)
    t.is(out.linesWhileReachable, 1, `reserved while the escaped memory is reachable: ${what}`)
    t.is(out.linesAfterCollect, 0, `released once it is collected and finalized: ${what}`)
    if (out.countsBeforeUnmap) t.deepEqual(out.countsBeforeUnmap, { tracked: 1, outstanding: 1 }, what)
  })
}

// At a worker's exit Node finalizes every buffer of the worker, even one whose memory lives on
// in another thread: that range stays reserved for the life of the process.
for (const [name, node, mode] of [
  ['Node 20: BYOB memory', () => process.execPath, 'exit-byob'],
  ['Node 24: transferred memory', node24Bin, 'exit-transfer'],
] as Array<[string, () => string, string]>) {
  testOn(name)(`${name} moved out of a worker that exits without unmap(): the range stays reserved, anonymous`, (t) => {
    const { out, before } = run(node(), mode)
    const what = JSON.stringify(out)
    t.true(out.anonymousAfterUnmap, `the file is released at the worker's exit: ${what}`)
    t.is(out.fileA, before, what)
    t.false(out.reused, what)
    t.deepEqual(out.laterSee, [ZERO], what)
    t.is(out.fileB, ZERO, what)
    t.is(out.linesWhileReachable, 1, what)
    t.is(out.linesAfterCollect, 1, `kept reserved: its end is never reported: ${what}`)
  })
}

async function collect(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc()
    await tick()
  }
}

test('views finalized before unmap() do not count: the range goes at once', async (t) => {
  const file = makeFile(dir, 'finalized-first', MiB)
  const mapping = mapFile(file)
  ;(() => {
    for (let i = 0; i < 100; i++) mapping.view(0, 4096)[0] = i
  })()
  await collect()
  t.is(internals.counts(mapping).outstanding, 0, 'every view was finalized')
  const address = mapping.address
  mapping.unmap()
  t.deepEqual(kernelMappings(address, MiB), [])
})

test('a view collected but not yet finalized keeps the range reserved until its finalizer runs', async (t) => {
  const file = makeFile(dir, 'pending', MiB)
  const mapping = mapFile(file)
  const address = mapping.address
  ;(() => {
    mapping.view(0, 4096)[0] = 1
  })()
  gc() // collected; its finalizer waits for a later turn
  t.is(internals.counts(mapping).outstanding, 1)
  mapping.unmap()
  const lines = kernelMappings(address, MiB)
  t.is(lines.length, 1, 'still reserved: nothing proves the memory unused yet')
  t.regex(lines[0], / rw-p 00000000 00:00 0 +$/, 'the file is released at once')
  await collect()
  t.deepEqual(kernelMappings(address, MiB), [], 'released by the finalizer')
  t.is(fs.readFileSync(file)[0], 1)
})

test('referenced views are detached and revoked: unmap() releases the range at once', (t) => {
  const file = makeFile(dir, 'revoked', MiB)
  const mapping = mapFile(file)
  const views = [mapping.buffer, mapping.view(4096, 4096), mapping.buffer.subarray(8)]
  t.deepEqual(internals.counts(mapping), { tracked: 2, outstanding: 2 })
  const address = mapping.address
  mapping.unmap()
  t.deepEqual(kernelMappings(address, MiB), [])
  t.deepEqual(
    views.map((v) => v.length),
    [0, 0, 0],
  )
})
