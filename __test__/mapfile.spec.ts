// mapFile(path, options), read-only mappings, and mappings larger than the largest Buffer.
import test from 'ava'
import { constants as bufferConstants } from 'node:buffer'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Config, Granularity, mapFile, mapFileAsync, mapNew, Pmem2Error, PROT_READ, PROT_WRITE, Sharing, Source } from '../index.mjs'
import { kernelMappings, makeFile, MiB, node24, openFdCount, PAGE, prerequisite, readFromAnotherProcess, tempDir } from './helpers.js'

const dir = tempDir()
const GiB = 2 ** 30

test('mapFile creates, allocates and maps a file, then closes its fd', (t) => {
  const file = path.join(dir, 'created')
  const fds = openFdCount()
  const mapping = mapFile(file, { size: 3 * MiB, create: true })
  t.is(openFdCount(), fds, 'the fd is closed once mapped')
  t.is(fs.statSync(file).size, 3 * MiB)
  t.true(fs.statSync(file).blocks * 512 >= 3 * MiB, 'blocks are allocated (posix_fallocate), not sparse')
  t.is(mapping.size, 3 * MiB)
  t.is(mapping.storeGranularity, Granularity.Page)
  t.is(mapping.sharing, Sharing.Shared)
  t.is(mapping.protection, (PROT_READ | PROT_WRITE) >>> 0)
  mapping.write(MiB, Buffer.from('mapFile'))
  t.is(readFromAnotherProcess(file, MiB, 7).toString(), 'mapFile')
  mapping.unmap()
  // Mapping it again keeps the contents; a larger size grows the file.
  const again = mapFile(file, { size: 4 * MiB })
  t.is(again.size, 4 * MiB)
  t.is(again.read(MiB, 7).toString(), 'mapFile')
  again.unmap()
})

test('mapFile errors: missing file, empty file, directory, read-only with create, wrong option types', (t) => {
  t.throws(() => mapFile(path.join(dir, 'missing')), { instanceOf: Pmem2Error, code: 'ENOENT', message: /missing/ })
  // Creating a file needs a size (an empty file cannot be mapped), and a refused call leaves none.
  t.throws(() => mapFile(path.join(dir, 'empty'), { create: true }), { code: 'EINVAL', message: /needs a size/ })
  t.false(fs.existsSync(path.join(dir, 'empty')))
  t.throws(() => mapFile(makeFile(dir, 'empty', 0), { create: true }), { code: 'PMEM2_E_SOURCE_EMPTY' })
  t.throws(() => mapFile(dir), { instanceOf: Pmem2Error, code: 'EISDIR' })
  const file = makeFile(dir, 'options', MiB)
  t.throws(() => mapFile(file, { readOnly: true, create: true }), { code: 'EINVAL' })
  t.throws(() => mapFile(file, { readOnly: true, size: MiB }), { code: 'EINVAL' })
  t.throws(() => mapFile(file, { granularity: Granularity.CacheLine }), { code: 'PMEM2_E_GRANULARITY_NOT_SUPPORTED' })
  t.throws(() => mapFile(file, { granularity: 7 as Granularity }), { code: 'PMEM2_E_GRANULARITY_NOT_SUPPORTED' })
  t.throws(() => mapFile(file, { sharing: 5 as Sharing }), { code: 'PMEM2_E_INVALID_SHARING_VALUE' })
  t.throws(() => mapFile(file, { readOnly: 'yes' as unknown as boolean }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => mapFile(file, { size: -1 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => mapFile(5 as unknown as string), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => mapFile(file, 5 as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})

test('mapFile readOnly: PROT_READ, write() refused, read() works, the file is untouched', (t) => {
  const file = makeFile(dir, 'read-only', MiB)
  fs.writeFileSync(file, 'read me', { flag: 'r+' })
  const mapping = mapFile(file, { readOnly: true })
  t.is(mapping.protection, PROT_READ)
  t.is(mapping.flushMethod, 'msync')
  t.throws(() => mapping.write(0, Buffer.from('x')), { instanceOf: Pmem2Error, code: 'PMEM2_E_NO_ACCESS' })
  t.is(mapping.read(0, 7).toString(), 'read me')
  t.notThrows(() => mapping.persist(0, PAGE))
  mapping.unmap()
  t.is(fs.readFileSync(file).subarray(0, 7).toString(), 'read me')
})

/** The lines of /proc/self/maps that map `file`, by permissions (`r--s`, `rw-p`, ...). */
function mapsOf(file: string): string[] {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(` ${file}`))
    .map((line) => line.split(/\s+/)[1])
}

test('a read-only mapping has a zero-copy buffer over a private copy-on-write alias: reads see the file, stores never reach it', (t) => {
  const file = makeFile(dir, 'read-only-alias', 4 * PAGE)
  const fd = fs.openSync(file, 'r+')
  for (let page = 0; page < 4; page++) fs.writeSync(fd, `page ${page}`, page * PAGE)
  const mapping = mapFile(file, { readOnly: true })
  // The kernel: the mapping itself (shared, read-only) and one private writable alias of the file.
  t.deepEqual(mapsOf(file).sort(), ['r--s', 'rw-p'])
  const buffer = mapping.buffer
  t.is(buffer, mapping.buffer, 'the same Buffer on every access')
  t.is(buffer.length, 4 * PAGE)
  t.is(buffer.toString('latin1', PAGE, PAGE + 6), 'page 1')
  const view = mapping.view(2 * PAGE, PAGE)
  t.is(view.toString('latin1', 0, 6), 'page 2')
  // A stray store changes private memory only: not the file, not what read() sees.
  buffer.write('STRAY', 0)
  buffer.fill(0xee, 3 * PAGE, 4 * PAGE)
  t.is(buffer.toString('latin1', 0, 6), 'STRAY0')
  t.is(mapping.read(0, 6).toString(), 'page 0')
  t.is(readFromAnotherProcess(file, 0, 6).toString(), 'page 0')
  t.is(readFromAnotherProcess(file, 3 * PAGE, 6).toString(), 'page 3')
  // Pages not stored to follow the file; a page stored to keeps its private copy.
  fs.writeSync(fd, 'later 1', PAGE)
  fs.writeSync(fd, 'later 0', 0)
  t.is(buffer.toString('latin1', PAGE, PAGE + 7), 'later 1')
  t.is(view.toString('latin1', 0, 6), 'page 2')
  t.is(buffer.toString('latin1', 0, 7), 'STRAY0\0')
  t.is(mapping.read(0, 7).toString(), 'later 0')
  fs.closeSync(fd)
  // The alias goes with the mapping: Buffers detached, nothing of the file mapped.
  mapping.unmap()
  t.is(buffer.length, 0)
  t.is(view.length, 0)
  t.deepEqual(mapsOf(file), [])
  t.is(fs.readFileSync(file).subarray(0, 7).toString(), 'later 0')
})

test('writable mappings have no alias; read-only private and mapNew/mapFileAsync mappings do', async (t) => {
  const file = makeFile(dir, 'alias-kinds', 2 * PAGE)
  const writable = mapFile(file)
  t.deepEqual(mapsOf(file), ['rw-s'])
  writable.unmap()
  const viaMapNew = () => {
    const fd = fs.openSync(file, 'r')
    const config = new Config()
    config.setRequiredStoreGranularity(Granularity.Page)
    config.setProtection(PROT_READ)
    const mapping = mapNew(config, Source.fromFd(fd))
    fs.closeSync(fd)
    return mapping
  }
  for (const make of [
    viaMapNew,
    () => mapFile(file, { readOnly: true, sharing: Sharing.Private }),
    () => mapFileAsync(file, { readOnly: true }),
  ]) {
    const mapping = await make()
    t.is(mapsOf(file).length, 2)
    mapping.buffer.write('mine', 0)
    t.is(mapping.read(0, 4).toString(), '\0'.repeat(4))
    mapping.unmap()
    t.deepEqual(mapsOf(file), [])
  }
  t.is(readFromAnotherProcess(file, 0, 4).toString(), '\0'.repeat(4))
})

test('mapFile private: writes stay in the process; the file never changes', (t) => {
  const file = makeFile(dir, 'private', MiB)
  const mapping = mapFile(file, { sharing: Sharing.Private })
  t.is(mapping.sharing, Sharing.Private)
  t.is(mapping.storeGranularity, Granularity.Byte)
  mapping.buffer.write('private', 0)
  mapping.persist(0, 7)
  t.is(mapping.read(0, 7).toString(), 'private')
  mapping.unmap()
  t.is(readFromAnotherProcess(file, 0, 7).toString(), '\0'.repeat(7))
  // A private read-only mapping: its buffer is a copy-on-write alias, never the file either.
  const ro = mapFile(file, { readOnly: true, sharing: Sharing.Private })
  ro.buffer.write('stray', 0)
  t.is(ro.read(0, 5).toString(), '\0'.repeat(5))
  ro.unmap()
  t.is(readFromAnotherProcess(file, 0, 5).toString(), '\0'.repeat(5))
})

/**
 * The largest Buffer of this runtime on a 64-bit machine: 4 GiB up to Node 21, 2^53 - 1 from
 * Node 22 on (V8 12.4 raised it).
 */
function expectedMaxLength(): number {
  const major = Number(process.versions.node.split('.')[0])
  return major >= 22 ? Number.MAX_SAFE_INTEGER : 2 ** 32
}

test('a 5 GiB mapping: buffer covers it where a Buffer may be that large (Node 22+), else throws a RangeError naming view(); views reach every byte', (t) => {
  const max = expectedMaxLength()
  t.is(bufferConstants.MAX_LENGTH, max, `Node ${process.versions.node} on ${process.arch}`)
  const file = makeFile(dir, 'five-gib', 5 * GiB) // sparse: no disk space used
  const mapping = mapFile(file)
  t.is(mapping.size, 5 * GiB)
  if (5 * GiB > max) {
    const err = t.throws(() => mapping.buffer, { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.regex(err!.message, /view\(offset, length\)/)
    t.regex(err!.message, /5368709120/)
  } else {
    const whole = mapping.buffer
    t.is(whole.length, 5 * GiB)
    whole[5 * GiB - 2] = 0x3c
    t.is(mapping.read(5 * GiB - 2, 1)[0], 0x3c)
  }
  // A window past 4 GiB: writes reach the file there, seen by another process.
  const far = 4 * GiB + 3 * PAGE
  const view = mapping.view(far, 2 * PAGE)
  t.is(view.length, 2 * PAGE)
  view.write('beyond 4 GiB', 100)
  mapping.persist(far, 2 * PAGE)
  const fd = fs.openSync(file, 'r')
  const back = Buffer.alloc(12)
  fs.readSync(fd, back, 0, 12, far + 100)
  fs.closeSync(fd)
  t.is(back.toString(), 'beyond 4 GiB')
  // bigint offsets, the last byte, and views of exactly the largest Buffer.
  const last = mapping.view(BigInt(5 * GiB - PAGE), BigInt(PAGE))
  last[PAGE - 1] = 0x5a
  t.is(mapping.read(5 * GiB - 1, 1)[0], 0x5a)
  t.is(mapping.view(GiB, 2 ** 32).length, 2 ** 32)
  if (2 ** 32 + PAGE > max) {
    t.throws(() => mapping.view(0, 2 ** 32 + PAGE), { instanceOf: RangeError, message: /largest Buffer/ })
  } else {
    t.is(mapping.view(0, 2 ** 32 + PAGE).length, 2 ** 32 + PAGE)
  }
  t.throws(() => mapping.view(5 * GiB - 10, 20), { instanceOf: RangeError })
  mapping.unmap()
  t.is(view.length, 0, 'views are detached by unmap() like buffer')
  t.is(last.length, 0)
})

test('mapFile offset and length map a window of the file: the kernel maps that file offset, stores land there', async (t) => {
  const file = makeFile(dir, 'window', 4 * PAGE)
  const fd = fs.openSync(file, 'r+')
  for (let page = 0; page < 4; page++) fs.writeSync(fd, `page ${page}`, page * PAGE)
  fs.closeSync(fd)
  const mapping = mapFile(file, { offset: PAGE, length: 2 * PAGE })
  t.is(mapping.size, 2 * PAGE)
  const [line, ...more] = kernelMappings(mapping.address, mapping.size)
  t.deepEqual(more, [], line)
  t.is(line.split(/\s+/)[2], PAGE.toString(16).padStart(8, '0'), 'the file offset /proc/self/maps shows')
  t.is(mapping.read(0, 6).toString(), 'page 1')
  t.is(mapping.read(PAGE, 6).toString(), 'page 2')
  mapping.write(PAGE + 6, Buffer.from('!'))
  t.is(readFromAnotherProcess(file, 2 * PAGE, 7).toString(), 'page 2!')
  mapping.unmap()
  // offset alone maps to the end; length alone from the start; bigints work; so does the async form.
  const tail = mapFile(file, { offset: 3n * BigInt(PAGE) })
  t.is(tail.size, PAGE)
  t.is(tail.read(0, 6).toString(), 'page 3')
  tail.unmap()
  const head = await mapFileAsync(file, { length: BigInt(PAGE) })
  t.is(head.size, PAGE)
  t.is(head.read(0, 6).toString(), 'page 0')
  head.unmap()
  // Checked as mapNew checks them.
  t.throws(() => mapFile(file, { offset: 100 }), { instanceOf: Pmem2Error, code: 'PMEM2_E_OFFSET_UNALIGNED' })
  t.throws(() => mapFile(file, { offset: 2 * PAGE, length: 3 * PAGE }), { instanceOf: Pmem2Error, code: 'PMEM2_E_MAP_RANGE' })
  t.throws(() => mapFile(file, { offset: -PAGE }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => mapFile(file, { length: '4096' as never }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})

test('an unknown mapFile option is a TypeError naming it, and nothing is created', async (t) => {
  const file = path.join(dir, 'typo')
  const fds = openFdCount()
  const sise = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE', message: /^Unknown option 'sise': mapFile takes size, create/ }
  t.throws(() => mapFile(file, { sise: MiB, create: true } as never), sise)
  t.throws(() => mapFileAsync(file, { sise: MiB, create: true } as never), sise)
  t.false(fs.existsSync(file))
  t.is(openFdCount(), fds)
  t.throws(() => mapFile(file, { size: MiB, create: true, 0: 1 } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /'0'/ })
  t.throws(() => mapFile(file, { size: MiB, create: true, readonly: true } as never), { message: /'readonly'/ })
  t.false(fs.existsSync(file))
  // Only own enumerable string keys count: inherited, hidden and symbol keys are not options.
  const options = Object.create({ inherited: true }, { hidden: { value: 1, enumerable: false } })
  options[Symbol('tag')] = 1
  options.size = MiB
  options.create = true
  const mapping = mapFile(file, options)
  t.is(mapping.size, MiB)
  mapping.unmap()
})

test('create without size is refused before anything is created, by both forms', async (t) => {
  const file = path.join(dir, 'no-size')
  t.throws(() => mapFile(file, { create: true }), { instanceOf: Pmem2Error, code: 'EINVAL', message: /needs a size/ })
  await t.throwsAsync(mapFileAsync(file, { create: true }), { instanceOf: Pmem2Error, code: 'EINVAL' })
  t.throws(() => mapFile(file, { create: true, size: 0 }), { code: 'EINVAL' })
  t.false(fs.existsSync(file))
})

// chattr +a needs e2fsprogs, CAP_LINUX_IMMUTABLE and a filesystem that supports the attribute.
const canAppendOnly = (() => {
  const probe = makeFile(dir, 'append-only-probe', 0)
  const set = spawnSync('chattr', ['+a', probe], { encoding: 'utf8' })
  spawnSync('chattr', ['-a', probe])
  const why = set.error ? String(set.error) : set.stderr.trim()
  return prerequisite('the append-only mapFile test', set.status === 0, `cannot chattr +a (${why}); needs e2fsprogs and CAP_LINUX_IMMUTABLE`)
})()
;(canAppendOnly ? test : test.skip)('a private mapFile opens the file read-only: an append-only file maps privately, not shared', (t) => {
  const file = makeFile(dir, 'append-only', MiB)
  fs.writeFileSync(file, 'append only', { flag: 'r+' })
  execFileSync('chattr', ['+a', file])
  t.teardown(() => execFileSync('chattr', ['-a', file]))
  // The kernel refuses a read-write open of an append-only file (EPERM): a shared mapping needs one.
  const refused = t.throws(() => mapFile(file), { instanceOf: Pmem2Error, code: 'EPERM' }) as Pmem2Error
  const byFs = t.throws(() => fs.openSync(file, 'r+')) as NodeJS.ErrnoException
  t.deepEqual([refused.message, refused.path, refused.syscall], [byFs.message, byFs.path, byFs.syscall])
  const readOnly = mapFile(file, { readOnly: true, sharing: Sharing.Private })
  t.is(readOnly.protection, PROT_READ)
  t.is(readOnly.read(0, 11).toString(), 'append only')
  readOnly.unmap()
  const copyOnWrite = mapFile(file, { sharing: Sharing.Private })
  copyOnWrite.write(0, Buffer.from('APPEND'))
  t.is(copyOnWrite.read(0, 11).toString(), 'APPEND only')
  copyOnWrite.unmap()
  t.is(readFromAnotherProcess(file, 0, 11).toString(), 'append only')
})

// The alias is a region like any other: memory of it that escaped detaching (moved by
// ArrayBuffer.prototype.transfer(), Node 22+) is released to anonymous memory at unmap().
const NODE24 = node24()
;(NODE24 ? test : test.skip)("Node 24: a transferred alias buffer outlives unmap() harmlessly: the file is released, stores reach nothing", (t) => {
  const file = makeFile(dir, 'alias-escape', 2 * PAGE)
  fs.writeFileSync(file, 'on disk', { flag: 'r+' })
  const index = fileURLToPath(new URL('../index.js', import.meta.url))
  const script = `
    const fs = require('fs')
    const p = require(${JSON.stringify(index)})
    const file = ${JSON.stringify(file)}
    const mapsOfFile = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(' ' + file)).length
    const m = p.mapFile(file, { readOnly: true })
    const moved = new Uint8Array(m.buffer.buffer.transfer())
    const before = Buffer.from(moved.subarray(0, 7)).toString()
    m.unmap()
    const after = mapsOfFile()
    moved[0] = 0x41
    console.log(JSON.stringify({ before, after, late: moved[1], unmapped: m.unmapped }))`
  const out = JSON.parse(execFileSync(NODE24!, ['-e', script], { encoding: 'utf8' }))
  t.deepEqual(out, { before: 'on disk', after: 0, late: 0, unmapped: true })
  t.is(fs.readFileSync(file).subarray(0, 7).toString(), 'on disk')
})
