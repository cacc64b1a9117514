// mapAsync, mapFileAsync and persistAsync: the same results and Pmem2Error codes as the
// synchronous calls, with the work on the libuv pool so the event loop keeps ticking.
// The timing tests are serial: concurrent tests of this file would stall the loop themselves.
import test from 'ava'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'

import { Config, Granularity, mapAsync, mapFileAsync, Mapping, Pmem2Error, Sharing, Source } from '../index.mjs'
import { makeFile, MiB, readFromAnotherProcess, tempDir } from './helpers.js'

const dir = tempDir()

/** Counts event-loop turns (setImmediate) and the longest gap between two of them while `work` runs. */
async function ticksDuring<T>(work: () => Promise<T>): Promise<{ result: T; ticks: number; maxGap: number; ms: number }> {
  let ticks = 0
  let maxGap = 0
  let last = performance.now()
  let done = false
  const spin = () => {
    const now = performance.now()
    maxGap = Math.max(maxGap, now - last)
    last = now
    ticks++
    if (!done) setImmediate(spin)
  }
  setImmediate(spin)
  const start = performance.now()
  try {
    const result = await work()
    return { result, ticks, maxGap, ms: performance.now() - start }
  } finally {
    done = true
  }
}

test('mapFileAsync resolves to a Mapping like mapFile; options and defaults are the same', async (t) => {
  const file = path.join(dir, 'async-created')
  const mapping = await mapFileAsync(file, { size: 2 * MiB, create: true })
  t.true(mapping instanceof Mapping)
  t.is(mapping.size, 2 * MiB)
  t.is(mapping.storeGranularity, Granularity.Page)
  t.is(mapping.flushMethod, 'msync')
  mapping.buffer.write('async', MiB)
  await mapping.persistAsync(MiB, 5)
  t.is(readFromAnotherProcess(file, MiB, 5).toString(), 'async')
  mapping.unmap()
  const priv = await mapFileAsync(file, { sharing: Sharing.Private })
  t.is(priv.storeGranularity, Granularity.Byte)
  t.is(priv.read(MiB, 5).toString(), 'async')
  priv.unmap()
})

test('mapAsync maps a source like mapNew', async (t) => {
  const file = makeFile(dir, 'map-async', MiB)
  const fd = fs.openSync(file, 'r+')
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  const pending = mapAsync(config, Source.fromFd(fd))
  const mapping = await pending.finally(() => fs.closeSync(fd)) // keep the fd open until it settles
  t.true(mapping instanceof Mapping)
  t.is(mapping.size, MiB)
  mapping.write(10, Buffer.from('mapAsync'))
  t.is(readFromAnotherProcess(file, 10, 8).toString(), 'mapAsync')
  mapping.unmap()
  const anon = await mapAsync(config, Source.fromAnon(MiB))
  t.is(anon.storeGranularity, Granularity.Byte)
  anon.unmap()
})

test('the async forms reject with the same Pmem2Error codes', async (t) => {
  const file = makeFile(dir, 'rejects', MiB)
  const missing = await t.throwsAsync(mapFileAsync(path.join(dir, 'missing')), { instanceOf: Pmem2Error, code: 'ENOENT' })
  t.is(missing?.errno, -2)
  // Creating needs a size (refused before anything is created); an existing empty file cannot be mapped.
  await t.throwsAsync(mapFileAsync(path.join(dir, 'empty'), { create: true }), { code: 'EINVAL', message: /needs a size/ })
  t.false(fs.existsSync(path.join(dir, 'empty')))
  await t.throwsAsync(mapFileAsync(makeFile(dir, 'empty', 0), { create: true }), { code: 'PMEM2_E_SOURCE_EMPTY' })
  await t.throwsAsync(mapFileAsync(file, { granularity: Granularity.CacheLine }), {
    instanceOf: Pmem2Error,
    code: 'PMEM2_E_GRANULARITY_NOT_SUPPORTED',
  })
  await t.throwsAsync(mapFileAsync(file, { readOnly: true, create: true }), { code: 'EINVAL' })
  const err = await t.throwsAsync(mapAsync(new Config(), Source.fromAnon(MiB)), {
    instanceOf: Pmem2Error,
    code: 'PMEM2_E_GRANULARITY_NOT_SET',
  })
  t.is(err?.errno, -100008)
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  config.setLength(2 * MiB)
  const fd = fs.openSync(file, 'r+')
  await t.throwsAsync(mapAsync(config, Source.fromFd(fd)), { code: 'PMEM2_E_MAP_RANGE' })
  fs.closeSync(fd)

  const mapping = await mapFileAsync(file)
  await t.throwsAsync(mapping.persistAsync(0, 2 * MiB), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  mapping.unmap()
  await t.throwsAsync(mapping.persistAsync(0, 1), { instanceOf: Pmem2Error, code: 'PMEM2_E_MAPPING_NOT_FOUND' })
  // Argument errors are thrown at once, as by the synchronous forms.
  t.throws(() => mapFileAsync(5 as unknown as string), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => mapAsync({} as Config, {} as Source), { instanceOf: TypeError })
  t.throws(() => mapping.persistAsync(-1, 1), { instanceOf: RangeError })
})

test.serial('persistAsync of 256 MiB of dirty pages: the event loop keeps ticking while msync runs', async (t) => {
  const size = 256 * MiB
  const mapping = await mapFileAsync(path.join(dir, 'persist-async'), { size, create: true })
  const buffer = mapping.buffer
  buffer.fill(1)
  const start = performance.now()
  mapping.persist(0, size)
  const syncMs = performance.now() - start
  buffer.fill(2) // dirty every page again
  const run = await ticksDuring(() => mapping.persistAsync(0, size))
  t.log(
    `persist: ${syncMs.toFixed(0)} ms blocking; persistAsync: ${run.ms.toFixed(0)} ms with ${run.ticks} ` +
      `event-loop turns, longest gap ${run.maxGap.toFixed(1)} ms`,
  )
  t.true(run.ms >= 20, `msync of ${size} dirty bytes took ${run.ms.toFixed(1)} ms: too short to tell anything`)
  t.true(run.ticks >= 100, `only ${run.ticks} event-loop turns`)
  t.true(run.maxGap < run.ms / 2, `the loop stalled for ${run.maxGap.toFixed(1)} of ${run.ms.toFixed(1)} ms`)
  // The data is durable and visible to another process.
  t.is(readFromAnotherProcess(path.join(dir, 'persist-async'), size - 1, 1)[0], 2)
  mapping.unmap()
})

test.serial('mapFileAsync opens the file on the libuv pool: a FIFO that blocks open() does not block the loop', async (t) => {
  // Opening a FIFO read-only blocks until a writer appears: a writer process shows up after 300 ms.
  const fifo = path.join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const writer = spawn('sh', ['-c', `sleep 0.3; exec 3>${fifo}; sleep 1`], { stdio: 'ignore' })
  try {
    const run = await ticksDuring(() =>
      mapFileAsync(fifo, { readOnly: true }).then(
        () => 'mapped',
        (e: Pmem2Error) => e.code,
      ),
    )
    t.log(`open() waited ${run.ms.toFixed(0)} ms; ${run.ticks} turns, longest gap ${run.maxGap.toFixed(1)} ms`)
    t.is(run.result, 'PMEM2_E_INVALID_FILE_TYPE', 'a FIFO is not a mappable file')
    t.true(run.ms >= 250, `resolved after ${run.ms.toFixed(0)} ms, before the writer opened the FIFO`)
    t.true(run.maxGap < 100, `the loop stalled for ${run.maxGap.toFixed(1)} ms`)
  } finally {
    writer.kill()
  }
})

// Every method borrows the Mapping shared, so none is refused while a task holds it.
test('buffer, view and unmap work while a persistAsync is pending', async (t) => {
  const mapping = await mapFileAsync(makeFile(dir, 'pending', 4 * MiB))
  const pending = mapping.persistAsync(0, 4 * MiB)
  t.notThrows(() => mapping.view(0, 16))
  t.notThrows(() => mapping.buffer)
  t.notThrows(() => mapping.unmap())
  await pending.catch(() => {})
})
