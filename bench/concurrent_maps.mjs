#!/usr/bin/env node
// The concurrent-mapping scenario of bench/concurrent_maps.c through pmem2's Node binding: each
// round maps THREADS files at once with Promise.all(files.map((f) => mapFileAsync(f))) on the
// libuv pool (run with UV_THREADPOOL_SIZE >= THREADS), copies each thread's record in, persists
// it with persistAsync(), unmaps, and reads the files back with fs. One JSON line per round, as
// the C and Rust versions print them.
//
//   UV_THREADPOOL_SIZE=8 node bench/concurrent_maps.mjs --dir DIR [--threads 8] [--rounds 3000] [--first-round 0]
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { MEM_NOFLUSH, mapFileAsync } = require('../index.js')

const RECORD = 32
const opts = { threads: 8, rounds: 3000, 'first-round': 0, size: 64 * 1024, dir: '' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '')
  if (!(key in opts) || argv[i + 1] === undefined) {
    console.error(`usage: concurrent_maps.mjs --dir DIR [--threads N] [--rounds N] [--first-round N] [--size BYTES]`)
    process.exit(2)
  }
  opts[key] = key === 'dir' ? argv[i + 1] : Number(argv[i + 1])
}

const record = (owner, round) => Buffer.from(`owner=${owner} round=${round}`.padEnd(RECORD, ' '))
const files = Array.from({ length: opts.threads }, (_, t) => path.join(opts.dir, `n${t}.bin`))
const fds = files.map((f) => fs.openSync(f, fs.constants.O_RDWR | fs.constants.O_CREAT))
for (const fd of fds) fs.ftruncateSync(fd, opts.size)

for (let round = opts['first-round']; round < opts.rounds; round++) {
  // Cleared first, so that whatever a file holds after the round was written in it.
  for (const fd of fds) fs.writeSync(fd, Buffer.alloc(RECORD), 0, RECORD, 0)
  // Copy, persist on the pool (so the msyncs run in parallel, as the C and Rust threads do), unmap.
  const results = await Promise.all(
    files.map((f, owner) =>
      mapFileAsync(f).then(
        async (m) => {
          m.memcpy(0, record(owner, round), MEM_NOFLUSH)
          await m.persistAsync(0, RECORD)
          m.unmap()
          return null
        },
        (e) => e.errno ?? e.code ?? String(e),
      ),
    ),
  )
  let failedMaps = 0
  let missing = 0
  let foreign = 0
  const failureCodes = {}
  fds.forEach((fd, owner) => {
    const got = Buffer.alloc(RECORD)
    fs.readSync(fd, got, 0, RECORD, 0)
    const named = /^owner=(\d+) /.exec(got.toString('latin1'))
    if (named && Number(named[1]) !== owner) foreign++
    if (results[owner] !== null) {
      failedMaps++
      failureCodes[results[owner]] = (failureCodes[results[owner]] ?? 0) + 1
    } else if (!got.equals(record(owner, round))) missing++
  })
  fs.writeSync(1, `${JSON.stringify({ round, failedMaps, failureCodes, missing, foreign })}\n`)
}
