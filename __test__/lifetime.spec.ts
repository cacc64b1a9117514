// What JavaScript can still reach after unmap() and garbage collection: never unmapped memory.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { Config, Granularity, Mapping, mapNew, Pmem2Error, Source } from '../index.mjs'
import { kernelMappings, makeFile, MiB, tempDir } from './helpers.js'

const dir = tempDir()
const gc = globalThis.gc as () => void

function mapFile(file: string): Mapping {
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  const fd = fs.openSync(file, 'r+')
  try {
    return mapNew(config, Source.fromFd(fd))
  } finally {
    fs.closeSync(fd)
  }
}

function mapsMentioning(file: string): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(file)).length
}

async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc()
    await tick() // external-buffer finalizers run on a later turn
  }
}

test('unmap detaches every view of the buffer and later calls throw PMEM2_E_MAPPING_NOT_FOUND', (t) => {
  const mapping = mapFile(makeFile(dir, 'detach', MiB))
  const buffer = mapping.buffer
  const slice = buffer.subarray(100, 200)
  const view = new DataView(buffer.buffer)
  const words = new Uint32Array(buffer.buffer, 0, 16)
  mapping.unmap()
  t.is(buffer.length, 0)
  t.is(slice.length, 0)
  t.is(words.length, 0)
  t.is(buffer.buffer.byteLength, 0)
  t.is(buffer[0] as number | undefined, undefined)
  buffer[0] = 1 // ignored, not a fault
  t.throws(() => view.getUint8(0), { instanceOf: TypeError })
  for (const call of [
    () => mapping.persist(0, 1),
    () => mapping.flush(0, 1),
    () => mapping.drain(),
    () => mapping.buffer,
    () => mapping.read(0, 1),
    () => mapping.write(0, Buffer.from('x')),
    () => mapping.size,
    () => mapping.address,
  ]) {
    const err = t.throws(call, { instanceOf: Pmem2Error, code: 'PMEM2_E_MAPPING_NOT_FOUND' })
    t.is(err?.errno, -100016)
  }
  t.notThrows(() => mapping.unmap(), 'a second unmap is a no-op')
  t.notThrows(() => mapping.delete())
})

// The kernel hands out address ranges in a fixed order (top-down, or bottom-up with the legacy
// layout), and a freed range is a candidate again at once: mappings made and kept after
// unmap() fill the holes ahead of it and then land in it. Each needs size + 2 MiB free
// (pmem2 aligns to 2 MiB), so the first mapping is large enough for several of them.
test('old views cannot reach a new mapping placed where an unmapped one was', (t) => {
  const size = 32 * MiB
  const first = mapFile(makeFile(dir, 'reuse-a', size))
  const oldView = first.buffer
  const oldSlice = oldView.subarray(size - 4096)
  const start = first.address
  const end = start + BigInt(size)
  first.unmap()
  t.deepEqual(kernelMappings(start, size), [], 'unmap() released the range at once')
  const fileB = makeFile(dir, 'reuse-b', 2 * MiB)
  const later: Mapping[] = []
  let inside: Mapping | undefined
  while (!inside && later.length < 256) {
    const next = mapFile(fileB)
    later.push(next)
    if (next.address < end && next.address + BigInt(2 * MiB) > start) inside = next
  }
  t.truthy(inside, `no mapping landed in the unmapped range in ${later.length} tries`)
  t.log(`mapping ${later.length} landed at offset ${inside!.address - start} of the unmapped range`)
  t.is(oldView.length, 0)
  t.is(oldSlice.length, 0)
  t.throws(() => oldView.fill(0xff), { instanceOf: TypeError }) // detached: refused, not a fault
  oldView[0] = 0xff // ignored
  oldSlice[0] = 0xff
  t.is(inside!.buffer.indexOf(0xff), -1, 'a store through an old view reached the new mapping')
  for (const m of later) m.unmap()
  t.is(fs.readFileSync(fileB).indexOf(0xff), -1)
})

test('Symbol.dispose unmaps', (t) => {
  const file = makeFile(dir, 'dispose', MiB)
  const mapping = mapFile(file)
  t.is(typeof mapping[Symbol.dispose], 'function')
  mapping[Symbol.dispose]()
  t.is(mapsMentioning(file), 0)
  t.throws(() => mapping.size, { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
})

test('a forgotten mapping is unmapped when garbage-collected', async (t) => {
  const file = makeFile(dir, 'forgotten', MiB)
  ;(() => {
    mapFile(file).buffer.write('x')
  })()
  t.is(mapsMentioning(file), 1)
  await collect()
  t.is(mapsMentioning(file), 0)
})

test('a buffer keeps its memory mapped after its Mapping object is collected', async (t) => {
  const file = makeFile(dir, 'outlives', MiB)
  let buffer: Buffer | undefined = (() => mapFile(file).buffer)()
  await collect()
  t.is(mapsMentioning(file), 1)
  buffer.write('still mapped', 0)
  t.is(fs.readFileSync(file).subarray(0, 12).toString(), 'still mapped')
  buffer = undefined
  await collect()
  t.is(mapsMentioning(file), 0)
})

test('unmap releases the address range at once when no view escaped', (t) => {
  const file = makeFile(dir, 'release', 4 * MiB)
  const mapping = mapFile(file)
  const views = [mapping.buffer, mapping.buffer.subarray(10)]
  const address = mapping.address
  mapping.unmap()
  t.deepEqual(kernelMappings(address, 4 * MiB), [])
  t.is(views[1].length, 0)
})

// Electron's V8 sandbox refuses external buffers; simulated in a child process.
test('without external buffers, buffer throws ERR_EXTERNAL_BUFFERS_NOT_ALLOWED and read/write still work', (t) => {
  const file = makeFile(dir, 'no-external', MiB)
  const script = `
    const fs = require('fs')
    const p = require(${JSON.stringify(fileURLToPath(new URL('../index.js', import.meta.url)))})
    const config = new p.Config()
    config.setRequiredStoreGranularity(p.Granularity.Page)
    const fd = fs.openSync(${JSON.stringify(file)}, 'r+')
    const m = p.mapNew(config, p.Source.fromFd(fd))
    let code = 'none'
    try { m.buffer } catch (e) { code = (e instanceof p.Pmem2Error) + ':' + e.code }
    m.write(10, Buffer.from('copied in'))
    process.stdout.write(code + '|' + m.read(10, 9).toString())
  `
  const out = execFileSync(process.execPath, ['-e', script], {
    env: { ...process.env, PMEM2_SIMULATE_NO_EXTERNAL_BUFFERS: '1' },
  }).toString()
  t.is(out, 'true:ERR_EXTERNAL_BUFFERS_NOT_ALLOWED|copied in')
  t.is(fs.readFileSync(file).subarray(10, 19).toString(), 'copied in')
})
