// The seed form of libpmem2 API 1.0: config.setFd(fd), config.getFileSize(), map(config).
import test from 'ava'
import fs from 'node:fs'
import { execFileSync, spawnSync } from 'node:child_process'

import { Config, Granularity, map, Pmem2Error, PROT_READ, Sharing } from '../index.mjs'
import { kernelMappings, makeFile, MiB, prerequisite, readFromAnotherProcess, tempDir } from './helpers.js'

const dir = tempDir()

test('setFd + map maps the whole file with PAGE granularity by default', (t) => {
  const file = makeFile(dir, 'seed', 4 * MiB)
  const fd = fs.openSync(file, 'r+')
  const config = new Config()
  config.setFd(fd)
  t.is(config.getFileSize(), 4 * MiB)
  const mapping = map(config)
  fs.closeSync(fd)
  t.is(mapping.storeGranularity, Granularity.Page)
  t.is(mapping.size, 4 * MiB)
  mapping.buffer.write('seed form', 0)
  mapping.persist(0, 9)
  t.is(readFromAnotherProcess(file, 0, 9).toString(), 'seed form')
  mapping.unmap()
})

test('map without an fd is PMEM2_E_FILE_HANDLE_NOT_SET', (t) => {
  const err = t.throws(() => map(new Config()), { instanceOf: Pmem2Error, code: 'PMEM2_E_FILE_HANDLE_NOT_SET' })
  t.is(err.errno, -100003)
  t.throws(() => new Config().getFileSize(), { code: 'PMEM2_E_FILE_HANDLE_NOT_SET' })
})

test('negative, closed and write-only fds are PMEM2_E_INVALID_FILE_HANDLE', (t) => {
  const file = makeFile(dir, 'bad-fds', MiB)
  const wo = fs.openSync(file, 'w')
  const closed = fs.openSync(file, 'r')
  fs.closeSync(closed)
  for (const fd of [-1, closed, wo]) {
    const config = new Config()
    config.setFd(fd)
    t.throws(() => map(config), { code: 'PMEM2_E_INVALID_FILE_HANDLE' }, `fd ${fd}`)
  }
  fs.closeSync(wo)
})

test('ranges past the end of the file or not representable are PMEM2_E_MAP_RANGE', (t) => {
  const file = makeFile(dir, 'range', MiB)
  const fd = fs.openSync(file, 'r+')
  for (const [offset, length] of [
    [0n, 2n * BigInt(MiB)],
    [BigInt(MiB), 4096n],
    [2n ** 62n, 2n ** 64n - 2n ** 62n],
  ]) {
    const config = new Config()
    config.setFd(fd)
    config.setOffset(offset)
    config.setLength(length)
    t.throws(() => map(config), { code: 'PMEM2_E_MAP_RANGE' }, `${offset} + ${length}`)
  }
  fs.closeSync(fd)
})

test('an O_RDONLY fd maps read-only; write() refuses, read() works, buffer is a private alias', (t) => {
  const file = makeFile(dir, 'readonly', MiB)
  fs.writeFileSync(file, 'read me')
  fs.truncateSync(file, MiB)
  const fd = fs.openSync(file, 'r')
  const config = new Config()
  config.setFd(fd)
  const mapping = map(config)
  fs.closeSync(fd)
  t.is(mapping.protection, PROT_READ)
  t.regex(kernelMappings(mapping.address, mapping.size)[0], / r--s /)
  t.throws(() => mapping.write(0, Buffer.from('x')), { code: 'PMEM2_E_NO_ACCESS' })
  t.is(mapping.read(0, 7).toString(), 'read me')
  // Its buffer is a private copy-on-write alias (mapfile.spec.ts): a store stays in memory.
  mapping.buffer.write('STRAY', 0)
  t.is(mapping.read(0, 7).toString(), 'read me')
  mapping.unmap()
  t.is(fs.readFileSync(file).subarray(0, 7).toString(), 'read me')
})

// chattr +a needs e2fsprogs, CAP_LINUX_IMMUTABLE and a filesystem that supports the attribute:
// probe once on a scratch file (set and cleared at once).
const canAppendOnly = (() => {
  const probe = makeFile(dir, 'append-only-probe', 0)
  const set = spawnSync('chattr', ['+a', probe], { encoding: 'utf8' })
  spawnSync('chattr', ['-a', probe])
  const why = set.error ? String(set.error) : set.stderr.trim()
  return prerequisite('the append-only test', set.status === 0, `cannot chattr +a (${why}); needs e2fsprogs and CAP_LINUX_IMMUTABLE`)
})()
;(canAppendOnly ? test : test.skip)('an append-only file fails with -EACCES, the errno as API 1.0 returned it', (t) => {
  const file = makeFile(dir, 'append-only', MiB)
  execFileSync('chattr', ['+a', file])
  t.teardown(() => execFileSync('chattr', ['-a', file]))
  const fd = fs.openSync(file, 'a+') // read-write, as an append-only file allows
  const config = new Config()
  config.setFd(fd)
  const err = t.throws(() => map(config), { instanceOf: Pmem2Error, code: 'EACCES' })
  t.is(err.errno, -13)
  fs.closeSync(fd)
})

test('private sharing in the seed form', (t) => {
  const file = makeFile(dir, 'seed-private', MiB)
  const fd = fs.openSync(file, 'r')
  const config = new Config()
  config.setFd(fd)
  config.setSharing(Sharing.Private)
  config.setProtection(PROT_READ)
  const mapping = map(config)
  fs.closeSync(fd)
  t.is(mapping.storeGranularity, Granularity.Byte)
  mapping.unmap()
})
