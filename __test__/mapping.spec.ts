// The modern form: mapNew(config, source), checked against the kernel and a second process.
// On the real-DAX tier the temporary directory is on DAX; the page-cache cases use pageDir.
import test from 'ava'
import fs from 'node:fs'

import { Config, Granularity, Mapping, mapNew, Pmem2Error, PROT_READ, PROT_WRITE, Sharing, Source } from '../index.mjs'
import {
  kernelMappings,
  makeFile,
  MiB,
  openFdCount,
  PAGE,
  pageCacheDir,
  readFromAnotherProcess,
  tempDir,
} from './helpers.js'

const dir = tempDir()
const pageDir = pageCacheDir()

function pageConfig(): Config {
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  return config
}

function mapFile(file: string, config = pageConfig(), flags = 'r+'): Mapping {
  const fd = fs.openSync(file, flags)
  try {
    return mapNew(config, Source.fromFd(fd))
  } finally {
    fs.closeSync(fd) // the mapping does not need the fd
  }
}

test('a page-cache file maps with PAGE granularity, no MAP_SYNC, at a 2 MiB aligned address', (t) => {
  const file = makeFile(pageDir, 'basic', 16 * MiB)
  const mapping = mapFile(file)
  t.is(mapping.size, 16 * MiB)
  t.is(mapping.storeGranularity, Granularity.Page)
  t.false(mapping.mapSync)
  t.is(mapping.sharing, Sharing.Shared)
  t.is(mapping.protection, (PROT_READ | PROT_WRITE) >>> 0)
  t.is(mapping.address % BigInt(2 * MiB), 0n)
  mapping.unmap()
})

test('the kernel shows a shared read-write mapping of the file', (t) => {
  const file = makeFile(dir, 'kernel', 4 * MiB)
  const mapping = mapFile(file)
  const lines = kernelMappings(mapping.address, mapping.size)
  t.is(lines.length, 1, lines.join('\n'))
  t.regex(lines[0], /^[0-9a-f]+-[0-9a-f]+ rw-s /)
  t.true(lines[0].endsWith(file))
  const address = mapping.address
  mapping.unmap()
  t.deepEqual(kernelMappings(address, 4 * MiB), [])
})

test('buffer writes reach the file without copies: another process reads them after persist', (t) => {
  const file = makeFile(dir, 'zero-copy', 2 * MiB)
  const mapping = mapFile(file)
  const buffer = mapping.buffer
  t.is(buffer, mapping.buffer, 'the same Buffer every time')
  t.is(buffer.length, 2 * MiB)
  buffer.write('persisted through the mapping', MiB + 7)
  mapping.persist(MiB + 7, 29)
  t.is(readFromAnotherProcess(file, MiB + 7, 29).toString(), 'persisted through the mapping')

  // And the other way: a plain write to the file shows up in the mapped Buffer.
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, 'from the file', 100)
  fs.closeSync(fd)
  t.is(buffer.subarray(100, 113).toString(), 'from the file')
  mapping.unmap()
})

test('write(offset, data) copies and persists in one call; read(offset, length) copies out', (t) => {
  const file = makeFile(dir, 'write', MiB)
  const mapping = mapFile(file)
  mapping.write(4000, Buffer.from('spans a page boundary'))
  t.is(readFromAnotherProcess(file, 4000, 21).toString(), 'spans a page boundary')
  t.is(mapping.read(4000, 21).toString(), 'spans a page boundary')
  mapping.unmap()
})

test('check order: granularity, offset alignment, emptiness, length alignment, range', (t) => {
  const empty = makeFile(dir, 'empty', 0)
  const file = makeFile(dir, 'order', 16 * MiB)
  t.throws(() => mapFile(empty, new Config()), { code: 'PMEM2_E_GRANULARITY_NOT_SET' })
  const unaligned = pageConfig()
  unaligned.setOffset(1024)
  unaligned.setLength(3000)
  t.throws(() => mapFile(empty, unaligned), { code: 'PMEM2_E_OFFSET_UNALIGNED' })
  t.throws(() => mapFile(empty), { code: 'PMEM2_E_SOURCE_EMPTY' })
  const badLength = pageConfig()
  badLength.setLength(3072)
  t.throws(() => mapFile(file, badLength), { code: 'PMEM2_E_LENGTH_UNALIGNED' })
  const past = pageConfig()
  past.setOffset(8 * MiB + 4 * MiB)
  past.setLength(8 * MiB)
  t.throws(() => mapFile(file, past), { code: 'PMEM2_E_MAP_RANGE' })
  const overflow = pageConfig()
  overflow.setOffset(2n ** 63n - 4096n)
  overflow.setLength(2n ** 64n - 4096n)
  t.throws(() => mapFile(file, overflow), { code: 'PMEM2_E_MAP_RANGE' })
})

test('offset equal to the file size with length 0 is PMEM2_E_MAP_RANGE (libpmem2 returns -EINVAL)', (t) => {
  const file = makeFile(dir, 'at-end', MiB)
  const config = pageConfig()
  config.setOffset(MiB)
  const err = t.throws(() => mapFile(file, config), { instanceOf: Pmem2Error })
  t.is(err.code, 'PMEM2_E_MAP_RANGE')
  t.is(err.errno, -100006)
})

test('read-only fd with shared write access is PMEM2_E_NO_ACCESS', (t) => {
  const file = makeFile(dir, 'ro', MiB)
  const err = t.throws(() => mapFile(file, pageConfig(), 'r'), { instanceOf: Pmem2Error, code: 'PMEM2_E_NO_ACCESS' })
  t.is(err.errno, -100032)
})

test('finer granularity than the page cache offers is PMEM2_E_GRANULARITY_NOT_SUPPORTED', (t) => {
  const file = makeFile(pageDir, 'gran', MiB)
  for (const g of [Granularity.Byte, Granularity.CacheLine]) {
    const config = new Config()
    config.setRequiredStoreGranularity(g)
    const err = t.throws(() => mapFile(file, config), { code: 'PMEM2_E_GRANULARITY_NOT_SUPPORTED' })
    t.regex(err.message, /MAP_SYNC/)
  }
})

test('an odd-sized file maps its exact size with length 0', (t) => {
  const file = makeFile(dir, 'odd', 5000)
  const mapping = mapFile(file)
  t.is(mapping.size, 5000)
  t.is(mapping.buffer.length, 5000)
  mapping.unmap()
})

test('private mappings are BYTE granularity and never change the file', (t) => {
  const file = makeFile(dir, 'private', MiB)
  const config = pageConfig()
  config.setSharing(Sharing.Private)
  const mapping = mapFile(file, config, 'r') // a read-only fd is enough for private
  t.is(mapping.storeGranularity, Granularity.Byte)
  mapping.buffer.fill(0x5a, 0, 16)
  mapping.persist(0, 16)
  t.deepEqual([...readFromAnotherProcess(file, 0, 16)], new Array(16).fill(0))
  t.regex(kernelMappings(mapping.address, mapping.size)[0], / rw-p /)
  mapping.unmap()
})

test('anonymous sources are BYTE granularity, zero-filled, and ignore the offset', (t) => {
  const config = pageConfig()
  config.setOffset(PAGE)
  config.setLength(MiB)
  const mapping = mapNew(config, Source.fromAnon(2 * MiB))
  t.is(mapping.storeGranularity, Granularity.Byte)
  t.is(mapping.size, MiB)
  t.true(mapping.buffer.every((b) => b === 0))
  mapping.unmap()
  t.throws(() => mapNew(pageConfig(), Source.fromAnon(0)), { code: 'PMEM2_E_SOURCE_EMPTY' })
})

test('one config maps several sources', (t) => {
  const config = pageConfig()
  const a = mapFile(makeFile(dir, 'reuse-a', MiB), config)
  const b = mapFile(makeFile(dir, 'reuse-b', 2 * MiB), config)
  t.deepEqual([a.size, b.size], [MiB, 2 * MiB])
  a.unmap()
  b.unmap()
})

test('persist and flush arguments outside the mapping are RangeErrors and touch nothing', (t) => {
  const mapping = mapFile(makeFile(dir, 'bounds', MiB))
  for (const [offset, length] of [
    [MiB, 1],
    [0, MiB + 1],
    [2n ** 64n - 1n, 2],
  ] as const) {
    t.throws(() => mapping.persist(offset, length), { instanceOf: RangeError })
    t.throws(() => mapping.flush(offset, length), { instanceOf: RangeError })
  }
  t.notThrows(() => mapping.persist(MiB, 0))
  t.throws(() => mapping.write(MiB - 1, Buffer.alloc(2)), { instanceOf: RangeError })
  t.throws(() => mapping.read(0, MiB + 1), { instanceOf: RangeError })
  mapping.unmap()
})

test('mapping keeps no fd open', (t) => {
  const file = makeFile(dir, 'fds', MiB)
  const before = openFdCount()
  const mapping = mapFile(file)
  t.is(openFdCount(), before)
  mapping.unmap()
})

test('wrong argument types are TypeErrors', (t) => {
  t.throws(() => mapNew({} as Config, Source.fromAnon(PAGE)), { instanceOf: TypeError })
  t.throws(() => mapNew(pageConfig(), new Config() as unknown as Source), { instanceOf: TypeError })
  const mapping = mapNew(pageConfig(), Source.fromAnon(PAGE))
  t.throws(() => mapping.write(0, 'text' as never), { instanceOf: TypeError })
  t.throws(() => mapping.persist('0' as never, 1), { instanceOf: TypeError })
  mapping.unmap()
})
