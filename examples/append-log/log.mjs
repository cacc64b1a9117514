#!/usr/bin/env node
// A durable append-only log on a pmem2 mapping: each record is copied and persisted with
// mapping.write(), then the committed tail in the header is persisted. A record is acknowledged
// only after both returned, so every acknowledged record survives kill -9 (and, on DAX or with
// msync, a power failure).
//
//   node log.mjs append <file> [count] [--nt]   append records, printing "ack <id>" once each is durable
//   node log.mjs recover <file>                 validate the log and print what it holds (JSON)
//
// --nt stores with non-temporal copies and one drain per store (memcpy with
// MEM_NONTEMPORAL | MEM_NODRAIN, then drain()) instead of write().
//
// Layout (little-endian):
//   header, one page:  magic "PMEM2LOG" (8 bytes) | version u32 | reserved u32 | tail u64
//   records from 4096: length u32 | crc32 u32 of the payload | payload | zero padding to 8 bytes
import { writeSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { crc32 } from 'node:zlib'
import { mapFile, MEM_NODRAIN, MEM_NONTEMPORAL } from 'pmem2'

const MAGIC = Buffer.from('PMEM2LOG')
const VERSION = 1
const TAIL = 16 // offset of the committed tail in the header
const FIRST = 4096 // the first record
const RECORD_HEADER = 8
const DEFAULT_SIZE = 16 << 20

const align8 = (n) => (n + 7) & ~7

/**
 * Opens (creating when needed) the log at `path` and returns it with its records recovered.
 * With `nonTemporal`, appends store through non-temporal copies and a drain instead of write().
 */
export function openLog(path, { size = DEFAULT_SIZE, nonTemporal = false } = {}) {
  const mapping = mapFile(path, { size, create: true })
  const header = mapping.read(0, 24)
  if (header.subarray(0, 8).equals(Buffer.alloc(8))) {
    // A new file: the tail first, then the magic that makes the header valid.
    const init = Buffer.alloc(24)
    init.writeUInt32LE(VERSION, 8)
    init.writeBigUInt64LE(BigInt(FIRST), TAIL)
    mapping.write(8, init.subarray(8))
    mapping.write(0, MAGIC)
  } else if (!header.subarray(0, 8).equals(MAGIC) || header.readUInt32LE(8) !== VERSION) {
    mapping.unmap()
    throw new Error(`${path} is not a version ${VERSION} pmem2 log`)
  }
  const log = { mapping, path, nonTemporal, tail: FIRST, records: [] }
  scan(log)
  return log
}

/** Reads every committed record; throws if one of them is damaged. */
function scan(log) {
  const { mapping } = log
  const tail = Number(mapping.read(TAIL, 8).readBigUInt64LE(0))
  if (tail < FIRST || tail > mapping.size || tail % 8 !== 0) throw new Error(`${log.path}: bad tail ${tail}`)
  const records = []
  let offset = FIRST
  while (offset < tail) {
    const head = mapping.read(offset, RECORD_HEADER)
    const length = head.readUInt32LE(0)
    if (offset + RECORD_HEADER + length > tail) throw new Error(`${log.path}: record at ${offset} passes the tail`)
    const payload = mapping.read(offset + RECORD_HEADER, length)
    if (crc32(payload) !== head.readUInt32LE(4)) throw new Error(`${log.path}: record at ${offset} is damaged`)
    records.push(payload)
    offset += align8(RECORD_HEADER + length)
  }
  log.tail = tail
  log.records = records
}

/** Copies `bytes` to `offset` and makes them durable before returning. */
function store(log, offset, bytes) {
  if (log.nonTemporal) {
    // The copy bypasses the cache (on PAGE mappings it is msynced as well); drain() waits for it.
    log.mapping.memcpy(offset, bytes, MEM_NONTEMPORAL | MEM_NODRAIN)
    log.mapping.drain()
  } else {
    log.mapping.write(offset, bytes) // copy + persist
  }
}

/** Appends `payload` durably; when this returns, the record survives a crash. */
export function append(log, payload) {
  const { mapping } = log
  const length = align8(RECORD_HEADER + payload.length)
  if (log.tail + length > mapping.size) throw new Error(`${log.path} is full`)
  const record = Buffer.alloc(length)
  record.writeUInt32LE(payload.length, 0)
  record.writeUInt32LE(crc32(payload), 4)
  payload.copy(record, RECORD_HEADER)
  store(log, log.tail, record) // the record past the committed tail, durable
  const tail = Buffer.alloc(8)
  tail.writeBigUInt64LE(BigInt(log.tail + length))
  store(log, TAIL, tail) // then commit it: one aligned 8-byte store, durable
  log.tail += length
  log.records.push(payload)
}

export function closeLog(log) {
  log.mapping.unmap()
}

async function main(args) {
  const nonTemporal = args.includes('--nt')
  const [command, path, countArg] = args.filter((a) => a !== '--nt')
  if (command === 'append' && path) {
    const log = openLog(path, { nonTemporal })
    const first = log.records.length
    const count = countArg === undefined ? Infinity : Number(countArg)
    for (let id = first; id < first + count; id++) {
      append(log, Buffer.from(JSON.stringify({ id, text: `record ${id} `.repeat(1 + (id % 7)) })))
      // Only now is the record acknowledged; writeSync, so the ack leaves before the next record.
      writeSync(1, `ack ${id}\n`)
    }
    closeLog(log)
  } else if (command === 'recover' && path) {
    const log = openLog(path)
    const records = log.records.map((r) => JSON.parse(r.toString()))
    process.stdout.write(`${JSON.stringify({ tail: log.tail, count: records.length, records })}\n`)
    closeLog(log)
  } else {
    process.stderr.write('usage: log.mjs append <file> [count] [--nt] | log.mjs recover <file>\n')
    process.exitCode = 2
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`log.mjs: ${e.message}\n`)
    process.exit(1)
  })
}
