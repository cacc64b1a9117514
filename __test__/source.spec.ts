// libpmem2's pmem2_source and pmem2_source_size/alignment cases.
import test from 'ava'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { execFileSync } from 'node:child_process'

import { Pmem2Error, Source } from '../index.mjs'
import { makeFile, MiB, PAGE, tempDir } from './helpers.js'

const dir = tempDir()

test('a regular file opened read-write or read-only is a source', (t) => {
  const file = makeFile(dir, 'rw', 16 * MiB)
  for (const flags of ['r+', 'r']) {
    const fd = fs.openSync(file, flags)
    const source = Source.fromFd(fd)
    t.is(source.size, 16 * MiB)
    t.is(source.alignment, PAGE)
    t.is(source.fileType, 'regular')
    fs.closeSync(fd)
  }
})

test('size is read from the file each time', (t) => {
  const file = makeFile(dir, 'grow', 0)
  const fd = fs.openSync(file, 'r+')
  const source = Source.fromFd(fd)
  t.is(source.size, 0)
  fs.ftruncateSync(fd, 5000)
  t.is(source.size, 5000)
  fs.closeSync(fd)
})

test('write-only, negative and closed fds are PMEM2_E_INVALID_FILE_HANDLE', (t) => {
  const file = makeFile(dir, 'wo', PAGE)
  const wo = fs.openSync(file, 'w')
  t.throws(() => Source.fromFd(wo), { instanceOf: Pmem2Error, code: 'PMEM2_E_INVALID_FILE_HANDLE' } as never)
  fs.closeSync(wo)
  t.throws(() => Source.fromFd(-1), { code: 'PMEM2_E_INVALID_FILE_HANDLE' })
  t.throws(() => Source.fromFd(wo), { code: 'PMEM2_E_INVALID_FILE_HANDLE' }) // now closed
})

test('directories, FIFOs, sockets and non-DAX devices are PMEM2_E_INVALID_FILE_TYPE', async (t) => {
  const dirFd = fs.openSync(dir, 'r')
  t.throws(() => Source.fromFd(dirFd), { code: 'PMEM2_E_INVALID_FILE_TYPE' })
  fs.closeSync(dirFd)

  const fifo = path.join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const fifoFd = fs.openSync(fifo, fs.constants.O_RDWR)
  t.throws(() => Source.fromFd(fifoFd), { code: 'PMEM2_E_INVALID_FILE_TYPE' })
  fs.closeSync(fifoFd)

  const nullFd = fs.openSync('/dev/null', 'r+')
  t.throws(() => Source.fromFd(nullFd), { code: 'PMEM2_E_INVALID_FILE_TYPE' })
  fs.closeSync(nullFd)

  const server = net.createServer().listen(path.join(dir, 'sock'))
  await new Promise((resolve) => server.once('listening', resolve))
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  t.throws(() => Source.fromFd(fd), { code: 'PMEM2_E_INVALID_FILE_TYPE' })
  server.close()
})

test('an anonymous source has the given size and page alignment', (t) => {
  t.is(Source.fromAnon(1 << 30).size, 1 << 30)
  t.is(Source.fromAnon(0).size, 0)
  t.is(Source.fromAnon(4096n).alignment, PAGE)
  t.is(Source.fromAnon(4096).fileType, null)
})
