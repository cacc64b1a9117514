#!/usr/bin/env node
// The guest side of the power-cut loop (powercut.mjs): a log of numbered records on a pmem2
// mapping of a file or of a device DAX range. It first verifies what an earlier guest left and
// prints "have NAME COUNT", then appends records forever, printing "ack NAME ID" to the
// console once record ID is durable. The host cuts the power (SIGKILL of QEMU) at a random
// moment and checks on the next boot that every acknowledged record is there.
//
//   node powercut-log.mjs NAME TARGET MODE [append|verify]
//
//   TARGET  file:PATH            a file on a DAX filesystem, created sparse on first use, so
//                                the first store to each page allocates it (MAP_SYNC's job)
//           devdax:PATH:SLOT     a 64 MiB range of a device DAX: offset SLOT * 64 MiB
//   MODE    write                each record and then the tail: write() (copy + persist)
//           nt                   memcpy(MEM_NONTEMPORAL | MEM_NODRAIN) + drain()
//
// The mapping must offer CACHE_LINE granularity or finer. POWERCUT_RESET_BAD=1 (the control
// log) starts a damaged file log anew after printing "bad NAME REASON".
//
// Layout (little-endian): header magic "PMEM2CUT" | tail u64 at 8; records from 64:
// length u32 | crc32 u32 of the payload | payload | zero padding to 8 bytes. Record ID's payload
// is a function of ID alone, so a record that is present but wrong is detected too.
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from 'node:zlib'

import { Config, Granularity, mapNew, MEM_NODRAIN, MEM_NONTEMPORAL, Source } from '../../index.mjs'

const MAGIC = Buffer.from('PMEM2CUT')
const TAIL = 8
const FIRST = 64
const SLOT = 64 << 20

const align8 = (n) => (n + 7) & ~7
export const payload = (id) => Buffer.from(`record ${id} `.repeat(1 + (id % 23)))

const say = (line) => fs.writeSync(1, `${line}\n`)

function open(target) {
  const [kind, file, slot] = target.split(':')
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.CacheLine)
  let fd
  if (kind === 'file') {
    if (!fs.existsSync(file)) {
      // Sparse, and durable before the first record: the name and the size.
      fd = fs.openSync(file, 'wx+')
      fs.ftruncateSync(fd, SLOT)
      fs.fsyncSync(fd)
      const dir = fs.openSync(path.dirname(file), 'r')
      fs.fsyncSync(dir)
      fs.closeSync(dir)
    } else {
      fd = fs.openSync(file, 'r+')
    }
  } else if (kind === 'devdax') {
    fd = fs.openSync(file, 'r+')
    config.setOffset(Number(slot) * SLOT)
    config.setLength(SLOT)
  } else {
    throw new Error(`bad target ${target}`)
  }
  try {
    return mapNew(config, Source.fromFd(fd))
  } finally {
    fs.closeSync(fd)
  }
}

/** Checks the log and returns the number of records and the committed tail. */
function recover(m, name) {
  const header = m.read(0, 16)
  if (header.subarray(0, 8).equals(Buffer.alloc(8))) {
    if (!m.read(0, FIRST).equals(Buffer.alloc(FIRST))) throw new Error(`${name}: no magic, but a header`)
    return { count: 0, tail: FIRST, fresh: true }
  }
  if (!header.subarray(0, 8).equals(MAGIC)) throw new Error(`${name}: bad magic ${header.subarray(0, 8).toString('hex')}`)
  const tail = Number(header.readBigUInt64LE(TAIL))
  if (tail < FIRST || tail > m.size || tail % 8) throw new Error(`${name}: bad tail ${tail}`)
  let offset = FIRST
  let id = 0
  while (offset < tail) {
    const head = m.read(offset, 8)
    const length = head.readUInt32LE(0)
    if (offset + 8 + length > tail) throw new Error(`${name}: record ${id} at ${offset} passes the tail ${tail}`)
    const body = m.read(offset + 8, length)
    if (crc32(body) !== head.readUInt32LE(4)) throw new Error(`${name}: record ${id} at ${offset} is damaged`)
    if (!body.equals(payload(id))) throw new Error(`${name}: record ${id} at ${offset} holds another record`)
    offset += align8(8 + length)
    id++
  }
  return { count: id, tail, fresh: false }
}

function main([name, target, mode, action = 'append']) {
  if (!name || !target || !['write', 'nt'].includes(mode) || !['append', 'verify'].includes(action)) {
    throw new Error('usage: powercut-log.mjs NAME file:PATH|devdax:PATH:SLOT write|nt [append|verify]')
  }
  let m = open(target)
  let state
  try {
    state = recover(m, name)
  } catch (e) {
    // The control log (on the page cache) may come back damaged: say so and start it anew.
    if (process.env.POWERCUT_RESET_BAD !== '1' || !target.startsWith('file:')) throw e
    say(`bad ${name} ${e.message}`)
    m.unmap()
    fs.unlinkSync(target.slice('file:'.length))
    m = open(target)
    state = recover(m, name)
  }
  let { count, tail, fresh } = state
  say(`have ${name} ${count} gran=${m.storeGranularity} mapSync=${m.mapSync}`)
  if (action === 'verify') return m.unmap()
  const put = (offset, bytes) => {
    if (mode === 'write') m.write(offset, bytes)
    else {
      m.memcpy(offset, bytes, MEM_NONTEMPORAL | MEM_NODRAIN)
      m.drain()
    }
  }
  if (fresh) {
    // The tail before the magic that makes the header valid.
    const t = Buffer.alloc(8)
    t.writeBigUInt64LE(BigInt(FIRST))
    put(TAIL, t)
    put(0, MAGIC)
  }
  const tailBytes = Buffer.alloc(8)
  for (let id = count; ; id++) {
    const body = payload(id)
    const length = align8(8 + body.length)
    if (tail + length > m.size) break
    const record = Buffer.alloc(length)
    record.writeUInt32LE(body.length, 0)
    record.writeUInt32LE(crc32(body), 4)
    body.copy(record, 8)
    put(tail, record) // past the committed tail: invisible until the tail moves
    tail += length
    tailBytes.writeBigUInt64LE(BigInt(tail))
    put(TAIL, tailBytes) // one aligned 8-byte store commits the record
    say(`ack ${name} ${id}`)
  }
  say(`full ${name}`)
  // A full log waits for the power cut like the others.
  setInterval(() => {}, 1 << 30)
}

try {
  main(process.argv.slice(2))
} catch (e) {
  say(`bad ${process.argv[2]} ${e.message}`)
  process.exit(1)
}
