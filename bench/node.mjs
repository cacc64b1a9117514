// pmem2 from Node, timed exactly as bench/libpmem2_bench.c times libpmem2 (same file, rows,
// batch sizes and medians); run through bench/run.mjs. Prints JSON lines
//   {"impl":"node","row":"persist 64B CL","median_ns":...}
// Each operation is one call into the binding, as an application would make it.
import fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Config, Granularity, mapNew, Source, MEM_NONTEMPORAL, MEM_TEMPORAL } = require('../index.js')

const args = process.argv.slice(2)
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt)
const path = opt('--file')
const reps = Number(opt('--reps', args.includes('--quick') ? 20 : 200))
if (!path) throw new Error('usage: node bench/node.mjs --file PATH [--reps N]')

const MIB = 1 << 20
const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
if (fs.fstatSync(fd).size < 16 * MIB) fs.ftruncateSync(fd, 16 * MIB)
const source = Source.fromFd(fd)

function map(force) {
  if (force) process.env.PMEM2_FORCE_GRANULARITY = force
  else delete process.env.PMEM2_FORCE_GRANULARITY
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  try {
    return mapNew(config, source)
  } finally {
    delete process.env.PMEM2_FORCE_GRANULARITY
  }
}

const cl = map('CACHE_LINE')
const page = map(undefined)
if (cl.storeGranularity !== Granularity.CacheLine || page.storeGranularity !== Granularity.Page) {
  throw new Error('unexpected granularity')
}
// Stores go through Uint8Array views: TypedArray.prototype.fill is V8's builtin, while
// Buffer.prototype.fill adds Node's argument handling (~10 ns more for 64 B).
const clBuf = new Uint8Array(cl.buffer.buffer)
const pageBuf = new Uint8Array(page.buffer.buffer)
const src = Buffer.alloc(MIB)
for (let i = 0; i < MIB; i++) src[i] = i & 0xff
const srcs = new Map([256, 4096, MIB].map((len) => [len, src.subarray(0, len)]))

const rows = []
const row = (name, iters, every, run) => rows.push({ name, iters, every, run, samples: [] })
row('map+unmap 16MiB', 1, 1, () => {
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  mapNew(config, source).unmap()
})
for (const [name, len, iters] of [
  ['persist 64B CL', 64, 200],
  ['persist 4KiB CL', 4096, 50],
  ['persist 64KiB CL', 65536, 5],
]) {
  row(name, iters, 1, (i) => {
    clBuf.fill(i & 0xff, 8 * MIB, 8 * MIB + len)
    cl.persist(8 * MIB, len)
  })
}
row('persist 4KiB PAGE', 1, 4, (i) => {
  pageBuf.fill(i & 0xff, 12 * MIB, 12 * MIB + 4096)
  page.persist(12 * MIB, 4096)
})
for (const [size, len, iters] of [
  ['256B', 256, 200],
  ['4KiB', 4096, 50],
  ['1MiB', MIB, 1],
]) {
  for (const [fname, flags] of [
    ['flags=0', 0],
    ['NT', MEM_NONTEMPORAL],
    ['T', MEM_TEMPORAL],
  ]) {
    const data = srcs.get(len)
    row(`memcpy ${size} ${fname}`, iters, 1, () => cl.memcpy(2 * MIB, data, flags))
  }
}
row('memset 4KiB', 50, 1, (i) => cl.memset(4 * MIB, i & 0xff, 4096, 0))
row('plain memset 1MiB', 1, 1, (i) => clBuf.fill(i & 0xff, 4 * MIB, 5 * MIB))

for (const r of rows) for (let i = 0; i < r.iters; i++) r.run(i) // warm up
for (let round = 0; round < reps; round++) {
  for (const r of rows) {
    if (round % r.every) continue
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < r.iters; i++) r.run(i)
    r.samples.push(Number(process.hrtime.bigint() - t0) / r.iters)
  }
}
for (const r of rows) {
  r.samples.sort((a, b) => a - b)
  const median = r.samples[Math.floor(r.samples.length / 2)]
  console.log(JSON.stringify({ impl: 'node', row: r.name, median_ns: Number(median.toFixed(1)), samples: r.samples.length }))
}
cl.unmap()
page.unmap()
fs.closeSync(fd)
