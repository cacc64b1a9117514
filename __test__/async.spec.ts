// mapAsync, mapFileAsync and persistAsync: the same results and Pmem2Error codes as the
// synchronous calls, with the work on the libuv pool so the event loop keeps ticking. What
// runs where is asked of the kernel (strace's thread ids, a FIFO's readers), not timed.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { Config, Granularity, mapAsync, mapFileAsync, Mapping, Pmem2Error, Sharing, Source } from '../index.mjs'
import { makeFile, MiB, pageCacheDir, prerequisite, readFromAnotherProcess, runs } from './helpers.js'

// The tests expect PAGE mappings: the page cache (on the real-DAX tier, not the DAX directory).
const dir = pageCacheDir()
const index = fileURLToPath(new URL('../index.js', import.meta.url))

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

const withStrace = prerequisite('the persistAsync strace test', runs('strace', '-V'), 'apt-get install strace')
  ? test
  : test.skip
withStrace('persistAsync makes its msync on a pool thread (persist on the main thread), with the same arguments', (t) => {
  // strace -f -o: every line starts with the id of the thread that made the call; the main
  // thread's is the process id. The synchronous persist is the control.
  const file = makeFile(dir, 'persist-async-thread', MiB)
  const log = path.join(dir, 'persist-async-thread.strace')
  const code = `const p = require(${JSON.stringify(index)})
    const m = p.mapFile(${JSON.stringify(file)})
    m.buffer.fill(1)
    m.persist(4096, 8192)
    m.buffer.fill(2)
    m.persistAsync(100, 5000).then(() => {
      process.stdout.write(process.pid + ' ' + m.address.toString(16) + ' ' + m.storeGranularity)
      m.unmap()
    })`
  const out = spawnSync(
    'strace',
    ['-f', '-qq', '--seccomp-bpf', '-X', 'raw', '-e', 'trace=msync', '-o', log, process.execPath, '-e', code],
    { encoding: 'utf8' },
  )
  t.is(out.status, 0, out.stderr)
  const [pid, address, granularity] = out.stdout.split(' ')
  t.is(Number(granularity), Granularity.Page)
  const base = BigInt('0x' + address)
  const calls = [...fs.readFileSync(log, 'utf8').matchAll(/^(\d+) +msync\((0x[0-9a-f]+), (\d+), (\w+)\)/gm)].map(
    (m) => [m[1] === pid ? 'main thread' : 'another thread', Number(BigInt(m[2]) - base), Number(m[3]), m[4]],
  )
  t.deepEqual(calls, [
    ['main thread', 4096, 8192, '0x4'],
    ['another thread', 0, 5100, '0x4'], // the page-aligned start, the length to the range's end
  ])
  t.is(readFromAnotherProcess(file, 5099, 1)[0], 2)
})

test.serial('mapFileAsync opens the file on the libuv pool: the loop runs while a FIFO blocks open()', async (t) => {
  // open(O_RDONLY) of a FIFO blocks until a writer appears, and a non-blocking open for
  // writing succeeds only while a reader has it open (ENXIO otherwise). So this thread can
  // open the writer end only while a pool thread is inside open(): if mapFileAsync opened on
  // this thread, it would never return and the test would time out.
  const fifo = path.join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  let settled = false
  const pending = mapFileAsync(fifo, { readOnly: true }).then(
    () => 'mapped',
    (e: Pmem2Error) => e.code,
  )
  void pending.finally(() => (settled = true))
  let writer: number | undefined
  let turns = 0
  while (writer === undefined && !settled) {
    try {
      writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
    } catch (e) {
      t.is((e as NodeJS.ErrnoException).code, 'ENXIO') // no reader yet: the pool thread has not reached open()
      turns++
      await tick()
    }
  }
  t.not(writer, undefined, 'mapFileAsync settled before a reader had the FIFO open')
  t.false(settled, 'mapFileAsync settled while its open() should have been waiting for this writer')
  t.log(`the writer end opened after ${turns} event-loop turns`)
  t.is(await pending, 'PMEM2_E_INVALID_FILE_TYPE', 'a FIFO is not a mappable file')
  fs.closeSync(writer!)
})

// unmap() while a persistAsync is queued: made deterministic in a child with a single pool
// thread, held in open() of a FIFO by a mapFileAsync queued first, so the persist cannot start
// before unmap(); it then rejects with PMEM2_E_MAPPING_NOT_FOUND. One that settles before
// unmap() resolves.
test('persistAsync queued before unmap() rejects with PMEM2_E_MAPPING_NOT_FOUND; settled before, it resolves', (t) => {
  const file = makeFile(dir, 'pending', 4 * MiB)
  const fifo = path.join(dir, 'pending-fifo')
  execFileSync('mkfifo', [fifo])
  const code = `const fs = require('fs')
    const p = require(${JSON.stringify(index)})
    const report = {}
    ;(async () => {
      const done = await p.mapFileAsync(${JSON.stringify(file)})
      await done.persistAsync(0, 4 * ${MiB})
      report.settledBefore = 'resolved'
      done.unmap()
      const m = p.mapFile(${JSON.stringify(file)})
      const buffer = m.buffer
      const blocker = p.mapFileAsync(${JSON.stringify(fifo)}, { readOnly: true }).catch((e) => e.code)
      const pending = m.persistAsync(0, 4 * ${MiB}).then(() => 'resolved', (e) => (e instanceof p.Pmem2Error) + ':' + e.code)
      report.view = m.view(0, 16).length
      m.unmap()
      report.detached = buffer.length
      let writer
      while (writer === undefined) {
        try { writer = fs.openSync(${JSON.stringify(fifo)}, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK) }
        catch { await new Promise(setImmediate) }
      }
      report.blocker = await blocker
      report.queued = await pending
      fs.closeSync(writer)
      process.stdout.write(JSON.stringify(report))
    })()`
  const out = execFileSync(process.execPath, ['-e', code], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    encoding: 'utf8',
  })
  t.deepEqual(JSON.parse(out), {
    settledBefore: 'resolved',
    view: 16,
    detached: 0,
    blocker: 'PMEM2_E_INVALID_FILE_TYPE',
    queued: 'true:PMEM2_E_MAPPING_NOT_FOUND',
  })
})
