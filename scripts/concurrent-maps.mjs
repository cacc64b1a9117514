#!/usr/bin/env node
// Issue 8's concurrent-mapping scenario side by side: THREADS threads (default 8) each map their
// own file at the same moment, write and persist a record, unmap, and the files are read back,
// ROUNDS times (default 3000), through
//   - Debian's libpmem2 from C          (bench/concurrent_maps.c, built with pkg-config libpmem2)
//   - pmem2 from Rust                   (crates/pmem2/examples/concurrent_maps.rs)
//   - pmem2 from Node, mapFileAsync     (bench/concurrent_maps.mjs, UV_THREADPOOL_SIZE=THREADS)
// Each prints one line per round; when a run dies (libpmem2 aborts when msync finds its mapping
// gone), this script counts the crash, checks the files of the round in progress for foreign
// records and restarts it at the next round. Prints a table and writes
// .cache/concurrent-maps/results.json. Exits 1 if a pmem2 row counts anything but zero.
//
//   node scripts/concurrent-maps.mjs [--rounds 3000] [--threads 8] [--only c,rust,node]
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = path.join(root, '.cache', 'concurrent-maps')
const RECORD = 32

const opts = { rounds: 3000, threads: 8, only: 'c,rust,node' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '')
  if (!(key in opts) || argv[i + 1] === undefined) {
    console.error('usage: concurrent-maps.mjs [--rounds N] [--threads N] [--only c,rust,node]')
    process.exit(2)
  }
  opts[key] = key === 'only' ? argv[i + 1] : Number(argv[i + 1])
}
const only = new Set(opts.only.split(','))

fs.mkdirSync(out, { recursive: true })

function buildC() {
  const exe = path.join(out, 'concurrent_maps')
  const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libpmem2'], { encoding: 'utf8' }).trim().split(/\s+/)
  execFileSync('gcc', ['-O2', '-pthread', '-o', exe, path.join(root, 'bench', 'concurrent_maps.c'), ...flags], {
    stdio: 'inherit',
  })
  return exe
}

function buildRust() {
  const json = execFileSync(
    'cargo',
    ['build', '--release', '-p', 'pmem2', '--example', 'concurrent_maps', '--locked', '--message-format=json'],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  )
  for (const line of json.split('\n')) {
    if (!line) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.target.name === 'concurrent_maps' && m.executable) return m.executable
  }
  throw new Error('cargo did not report the concurrent_maps example')
}

const libpmem2Version = () => {
  try {
    return execFileSync('pkg-config', ['--modversion', 'libpmem2'], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

const impls = []
if (only.has('c')) impls.push({ name: `libpmem2 ${libpmem2Version()} (C)`, prefix: 'c', cmd: [buildC()], pmem2: false })
if (only.has('rust')) impls.push({ name: 'pmem2 (Rust)', prefix: 'r', cmd: [buildRust()], pmem2: true })
if (only.has('node')) {
  impls.push({
    name: 'pmem2 (Node, mapFileAsync)',
    prefix: 'n',
    cmd: [process.execPath, path.join(root, 'bench', 'concurrent_maps.mjs')],
    env: { UV_THREADPOOL_SIZE: String(opts.threads) },
    pmem2: true,
  })
}

/** Runs `impl` from `first` on; resolves with the rounds it finished and how it ended. */
function runFrom(impl, dir, first, totals) {
  return new Promise((resolve, reject) => {
    const [exe, ...pre] = impl.cmd
    const args = [...pre, '--dir', dir, '--threads', String(opts.threads), '--rounds', String(opts.rounds)]
    const child = spawn(exe, [...args, '--first-round', String(first)], {
      env: { ...process.env, ...impl.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let next = first
    let pending = ''
    let stderr = ''
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)))
    child.stdout.on('data', (chunk) => {
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop()
      for (const line of lines) {
        const r = JSON.parse(line)
        totals.failedMaps += r.failedMaps
        totals.missing += r.missing
        totals.foreign += r.foreign
        for (const [code, n] of Object.entries(r.failureCodes)) totals.failureCodes[code] = (totals.failureCodes[code] ?? 0) + n
        next = r.round + 1
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ next, code, signal, stderr }))
  })
}

/** Foreign records in the files of a round that did not finish. */
function foreignAfterCrash(impl, dir) {
  let foreign = 0
  for (let t = 0; t < opts.threads; t++) {
    const fd = fs.openSync(path.join(dir, `${impl.prefix}${t}.bin`), 'r')
    const got = Buffer.alloc(RECORD)
    fs.readSync(fd, got, 0, RECORD, 0)
    fs.closeSync(fd)
    const m = /^owner=(\d+) /.exec(got.toString('latin1'))
    if (m && Number(m[1]) !== t) foreign++
  }
  return foreign
}

const results = []
for (const impl of impls) {
  const dir = fs.mkdtempSync(path.join(out, `${impl.prefix}-`))
  const totals = { failedMaps: 0, failureCodes: {}, missing: 0, foreign: 0, crashes: {}, crashedRounds: 0 }
  const started = performance.now()
  let first = 0
  while (first < opts.rounds) {
    const end = await runFrom(impl, dir, first, totals)
    if (end.code === 0 && end.next >= opts.rounds) break
    const how = end.signal ?? `exit ${end.code}`
    totals.crashes[how] = (totals.crashes[how] ?? 0) + 1
    totals.crashedRounds++
    totals.foreign += foreignAfterCrash(impl, dir)
    if (totals.crashedRounds === 1) {
      const lines = end.stderr.trim().split('\n')
      totals.firstCrash = lines.find((l) => /Error|error|abort|Assert/.test(l)) ?? lines.slice(-3).join(' | ')
    }
    first = end.next + 1 // the round in progress is lost
  }
  fs.rmSync(dir, { recursive: true, force: true })
  const seconds = (performance.now() - started) / 1000
  results.push({ impl: impl.name, pmem2: impl.pmem2, threads: opts.threads, rounds: opts.rounds, ...totals, seconds })
}

const fmt = (o) => Object.entries(o).map(([k, v]) => `${v}× ${k}`).join(', ') || '0'
console.log(`${opts.threads} threads × ${opts.rounds} rounds, each thread maps its own file at the same moment\n`)
console.log('| implementation | maps | failed maps | missing records | foreign records | process crashes | time |')
console.log('|---|---|---|---|---|---|---|')
for (const r of results) {
  const failed = r.failedMaps ? `${r.failedMaps} (${fmt(r.failureCodes)})` : '0'
  console.log(
    `| ${r.impl} | ${r.threads * r.rounds} | ${failed} | ${r.missing} | ${r.foreign} | ${fmt(r.crashes)} | ${r.seconds.toFixed(1)} s |`,
  )
}
for (const r of results) if (r.firstCrash) console.log(`\n${r.impl}, first crash: ${r.firstCrash}`)
fs.writeFileSync(path.join(out, 'results.json'), `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`)
const bad = results.filter((r) => r.pmem2 && (r.failedMaps || r.missing || r.foreign || r.crashedRounds))
process.exitCode = bad.length ? 1 : 0
