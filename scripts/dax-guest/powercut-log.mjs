#!/usr/bin/env node
// The guest side of the power-cut loop (powercut.mjs): logs of numbered records on pmem2
// mappings of files and of device DAX ranges, all in this one process (a node start costs
// seconds under TCG). It first verifies what an earlier guest left in each log and prints
// "have NAME COUNT", then appends records forever, each to a log chosen at random, printing
// "ack NAME ID" to the console once record ID is durable. The host cuts the power (SIGKILL of
// QEMU) at a random moment and checks on the next boot that every acknowledged record is there.
// The "have" line also names the mapping's granularity and whether it got MAP_SYNC.
//
//   node powercut-log.mjs append|verify NAME:MODE:TARGET...
//
//   MODE    write                each record and then the tail: write() (copy + persist)
//           nt                   memcpy(MEM_NONTEMPORAL | MEM_NODRAIN) + drain()
//           forget               memcpy(MEM_NOFLUSH) and nothing else: the control, a writer
//                                that acknowledges what it never persisted (a file on the page
//                                cache, PAGE granularity); a damaged control log starts anew
//                                after "bad NAME REASON"
//   TARGET  file:PATH            a file, created sparse on first use, so on DAX the first
//                                store to each page allocates it (MAP_SYNC's job)
//           devdax:PATH:SLOT     a 64 MiB range of a device DAX: offset SLOT * 64 MiB
//
// write and nt logs require CACHE_LINE granularity or finer, as real DAX gives.
//
// Layout (little-endian): header magic "PMEM2CUT" | tail u64 at 8; records from 64:
// length u32 | crc32 u32 of the payload | payload | zero padding to 8 bytes. Record ID's payload
// is a function of ID alone, so a record that is present but wrong is detected too.
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from 'node:zlib'

import { Config, Granularity, mapNew, MEM_NODRAIN, MEM_NOFLUSH, MEM_NONTEMPORAL, Source } from '../../index.mjs'

const MAGIC = Buffer.from('PMEM2CUT')
const TAIL = 8
const FIRST = 64
const SLOT = 64 << 20
const MODES = ['write', 'nt', 'forget']

const align8 = (n) => (n + 7) & ~7
export const payload = (id) => Buffer.from(`record ${id} `.repeat(1 + (id % 23)))

const say = (line) => fs.writeSync(1, `${line}\n`)

/** Maps a log's target: `control` logs on the page cache (PAGE), the others CACHE_LINE or finer. */
function open(target, control) {
  const [kind, file, slot] = target.split(':')
  const config = new Config()
  config.setRequiredStoreGranularity(control ? Granularity.Page : Granularity.CacheLine)
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

/** Checks a log and returns the number of records and the committed tail. */
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

/** Opens and verifies one log ("have NAME COUNT"); returns its appender. */
function log(spec) {
  const [name, mode, ...rest] = spec.split(':')
  const target = rest.join(':')
  if (!name || !MODES.includes(mode) || !target) throw new Error(`bad log ${spec}: NAME:write|nt|forget:TARGET`)
  const control = mode === 'forget'
  let m = open(target, control)
  let state
  try {
    state = recover(m, name)
  } catch (e) {
    // The control log (on the page cache) may come back damaged: say so and start it anew.
    if (!control || !target.startsWith('file:')) throw e
    say(`bad ${name} ${e.message}`)
    m.unmap()
    fs.unlinkSync(target.slice('file:'.length))
    m = open(target, control)
    state = recover(m, name)
  }
  let { count, tail, fresh } = state
  say(`have ${name} ${count} ${Granularity[m.storeGranularity]} mapSync=${m.mapSync}`)
  const put = (offset, bytes) => {
    if (mode === 'write') m.write(offset, bytes)
    else if (mode === 'nt') {
      m.memcpy(offset, bytes, MEM_NONTEMPORAL | MEM_NODRAIN)
      m.drain()
    } else m.memcpy(offset, bytes, MEM_NOFLUSH)
  }
  const tailBytes = Buffer.alloc(8)
  return {
    name,
    unmap: () => m.unmap(),
    /** Appends the next record; false when the log is full. */
    append() {
      if (fresh) {
        // The tail before the magic that makes the header valid.
        tailBytes.writeBigUInt64LE(BigInt(FIRST))
        put(TAIL, tailBytes)
        put(0, MAGIC)
        fresh = false
      }
      const body = payload(count)
      const length = align8(8 + body.length)
      if (tail + length > m.size) return false
      const record = Buffer.alloc(length)
      record.writeUInt32LE(body.length, 0)
      record.writeUInt32LE(crc32(body), 4)
      body.copy(record, 8)
      put(tail, record) // past the committed tail: invisible until the tail moves
      tail += length
      tailBytes.writeBigUInt64LE(BigInt(tail))
      put(TAIL, tailBytes) // one aligned 8-byte store commits the record
      say(`ack ${name} ${count}`)
      count++
      return true
    },
  }
}

function main([action, ...specs]) {
  if (!['append', 'verify'].includes(action) || specs.length === 0) {
    throw new Error('usage: powercut-log.mjs append|verify NAME:write|nt|forget:TARGET...')
  }
  const logs = specs.map((spec) => {
    try {
      return log(spec)
    } catch (e) {
      say(`bad ${spec.split(':')[0]} ${e.message}`)
      process.exit(1)
    }
  })
  if (action === 'verify') {
    for (const l of logs) l.unmap()
    return
  }
  for (;;) {
    const l = logs[Math.floor(Math.random() * logs.length)]
    if (!l.append()) {
      say(`full ${l.name}`)
      // A full log waits for the power cut like the others.
      setInterval(() => {}, 1 << 30)
      return
    }
  }
}

try {
  main(process.argv.slice(2))
} catch (e) {
  say(`bad ${e.message}`)
  process.exit(1)
}
