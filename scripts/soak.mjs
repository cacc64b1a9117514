#!/usr/bin/env node
// Soak: random pmem2 operations in worker threads and child processes for N minutes, each write
// checked against a shadow through plain file I/O, while the fds, /proc/<pid>/maps lines and RSS
// of every process are sampled; and, at the same time, a kill -9 durability loop: the append-log
// writer (examples/append-log/log.mjs) is killed with SIGKILL at random moments, in PAGE and in
// forced CACHE_LINE mode, with write()+persist and with non-temporal copies + drain, and every
// record it acknowledged must be in the file (read with fs, not through pmem2).
//
//   npm run soak -- --minutes 10          at least 200 kills, however long that takes
//   npm run soak -- --ci                  30 seconds and at least 20 kills (.ci/run)
//   options: --processes 2 --workers 2 --seed N --kills N --out FILE
//
// Prints a summary and writes it as JSON (default .cache/soak/results.json). Exits 1 when a
// write is missing or foreign, a call fails, an acknowledged record is lost, something is left
// behind, or fds, maps lines or RSS grow: after a warm-up (a fifth of the run, at least 5 s) the
// median of the last third of the samples may exceed the first third's by at most
// GROWTH_TOLERANCE.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { crc32 } from 'node:zlib'

import { OWN_SIZE, SLICE, ownFile, sharedFile } from './soak-actor.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const ACTOR = path.join(root, 'scripts', 'soak-actor.mjs')
const LOG = path.join(root, 'examples', 'append-log', 'log.mjs')
const MiB = 1 << 20

/** How far the last third may exceed the first: a leak per operation passes these within seconds. */
const GROWTH_TOLERANCE = {
  fds: { ratio: 1, plus: 8 }, // a few fds are open while mapFileAsync runs on the pool
  maps: { ratio: 1.25, plus: 64 }, // forgotten mappings wait for the collector; V8's heap grows in steps
  rss: { ratio: 1.25, plus: 64 * MiB }, // V8 heap and allocator arenas settle slowly
}

function parseArgs(argv) {
  const opts = { minutes: undefined, ci: false, processes: 2, workers: 2, seed: undefined, kills: undefined, out: undefined }
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '')
    if (key === 'ci') opts.ci = true
    else if (key in opts && argv[i + 1] !== undefined) opts[key] = key === 'out' ? argv[++i] : Number(argv[++i])
    else {
      console.error('usage: soak.mjs [--minutes N] [--ci] [--processes N] [--workers N] [--seed N] [--kills N] [--out FILE]')
      process.exit(2)
    }
  }
  opts.minutes ??= opts.ci ? 0.5 : 10
  opts.kills ??= opts.ci ? 20 : 200
  opts.seed ??= Date.now() % 2 ** 31
  opts.out ??= path.join(root, '.cache', 'soak', 'results.json')
  return opts
}

const opts = parseArgs(process.argv.slice(2))
let seedState = opts.seed >>> 0
/** The parent's own seeded generator (mulberry32): kill delays and modes. */
function rand() {
  seedState = (seedState + 0x6d2b79f5) >>> 0
  let t = seedState
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const problems = []
const problem = (text) => {
  if (problems.length < 50) problems.push(text)
}

// ---- the files --------------------------------------------------------------------------------

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmem2-soak-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
const fsType = execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim()
const actors = opts.processes * (opts.workers + 1)
for (let id = 0; id < actors; id++) fs.truncateSync((fs.writeFileSync(ownFile(dir, id), ''), ownFile(dir, id)), OWN_SIZE)
fs.writeFileSync(sharedFile(dir), '')
fs.truncateSync(sharedFile(dir), actors * SLICE)

/** What mapping a writer gets with `env`: the forced CACHE_LINE mode must really be CACHE_LINE. */
function probeGranularity(env) {
  const file = path.join(dir, 'probe.bin')
  const code = `const m = require(${JSON.stringify(path.join(root, 'index.js'))}).mapFile(${JSON.stringify(file)}, { size: 4096, create: true }); process.stdout.write(JSON.stringify({ granularity: m.storeGranularity, flushMethod: m.flushMethod })); m.unmap()`
  return JSON.parse(execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...baseEnv, ...env } }))
}
const baseEnv = { ...process.env }
delete baseEnv.PMEM2_FORCE_GRANULARITY
const MODES = [
  { name: 'PAGE, write+persist', env: {}, args: [], granularity: 2 },
  { name: 'CACHE_LINE, write+persist', env: { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE' }, args: [], granularity: 1 },
  { name: 'PAGE, NT memcpy+drain', env: {}, args: ['--nt'], granularity: 2 },
  { name: 'CACHE_LINE, NT memcpy+drain', env: { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE' }, args: ['--nt'], granularity: 1 },
]
for (const mode of MODES) {
  mode.probe = probeGranularity(mode.env)
  if (mode.probe.granularity !== mode.granularity) {
    problem(`${mode.name}: the writer would map with granularity ${mode.probe.granularity}, not ${mode.granularity}`)
  }
}

// ---- random operations in child processes and worker threads ---------------------------------

const started = Date.now()
const deadline = started + opts.minutes * 60_000
const children = []
for (let p = 0; p < opts.processes; p++) {
  const config = { dir, process: p, workers: opts.workers, deadline, seed: opts.seed + 1 }
  const child = spawn(process.execPath, ['--expose-gc', ACTOR, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: baseEnv,
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)))
  const done = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      if (code !== 0) {
        problem(`actor process ${p} ended with ${signal ?? code}: ${err.trim()}`)
        resolve(null)
      } else resolve(JSON.parse(out))
    }),
  )
  children.push({ pid: child.pid, done, samples: [] })
}

// ---- resource samples --------------------------------------------------------------------------

function sample(pid) {
  try {
    const fds = fs.readdirSync(`/proc/${pid}/fd`).length
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).length
    const rss = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096
    return { fds, maps, rss }
  } catch {
    return null // the process has just exited
  }
}
const sampleMs = Math.min(2000, Math.max(250, (opts.minutes * 60_000) / 240))
let sampling = true
const sampler = (async () => {
  while (sampling) {
    const t = (Date.now() - started) / 1000
    if (Date.now() < deadline) {
      for (const c of children) {
        const s = sample(c.pid)
        if (s) c.samples.push({ t, ...s })
      }
    }
    await sleep(sampleMs)
  }
})()

// ---- kill -9 durability loop -------------------------------------------------------------------

/** The log as plain file I/O sees it (layout in examples/append-log/log.mjs). */
function readLog(file) {
  const fd = fs.openSync(file, 'r')
  try {
    const header = Buffer.alloc(24)
    fs.readSync(fd, header, 0, 24, 0)
    if (!header.subarray(0, 8).equals(Buffer.from('PMEM2LOG'))) return { valid: false, records: [] }
    const tail = Number(header.readBigUInt64LE(16))
    const body = Buffer.alloc(Math.max(0, tail - 4096))
    fs.readSync(fd, body, 0, body.length, 4096)
    const records = []
    for (let off = 0; off < body.length; ) {
      const length = body.readUInt32LE(off)
      const payload = body.subarray(off + 8, off + 8 + length)
      if (crc32(payload) !== body.readUInt32LE(off + 4)) throw new Error(`${file}: record at ${4096 + off} is damaged`)
      records.push(JSON.parse(payload.toString()))
      off += (8 + length + 7) & ~7
    }
    return { valid: true, tail, records }
  } finally {
    fs.closeSync(fd)
  }
}

/** Starts the writer and kills it at a random moment; resolves with the ids it acknowledged. */
function writeAndKill(mode, file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LOG, 'append', file, ...mode.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...baseEnv, ...mode.env },
    })
    const acked = []
    let pending = ''
    let err = ''
    let killed = false
    const kill = () => {
      if (!killed) {
        killed = true
        child.kill('SIGKILL')
      }
    }
    // A quarter of the kills land anywhere from the start (while Node starts or the log is
    // opened and initialised), the rest within 200 ms of the first acknowledgement.
    const early = rand() < 0.25
    const delay = early ? rand() * 150 : rand() * 200
    let timer = early ? setTimeout(kill, delay) : null
    child.stderr.on('data', (d) => (err = (err + d).slice(-2000)))
    child.stdout.on('data', (chunk) => {
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop()
      for (const line of lines) {
        const m = /^ack (\d+)$/.exec(line)
        if (m) acked.push(Number(m[1]))
        else problem(`${mode.name}: writer printed ${JSON.stringify(line)}`)
      }
      if (!timer && acked.length) timer = setTimeout(kill, delay)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (signal !== 'SIGKILL') problem(`${mode.name}: writer ended with ${signal ?? code} before the kill: ${err.trim()}`)
      resolve(acked)
    })
  })
}

const kills = MODES.map((mode) => ({
  mode: mode.name,
  granularity: mode.probe.granularity,
  flushMethod: mode.probe.flushMethod,
  kills: 0,
  killedBeforeFirstAck: 0,
  acknowledged: 0,
  lost: 0,
  committedUnacknowledged: 0,
  files: 0,
}))
const KILLS_PER_FILE = 10

async function killLoop() {
  const state = MODES.map(() => ({ file: null, count: 0, fileKills: 0 }))
  let total = 0
  while (Date.now() < deadline || total < opts.kills) {
    const i = total % MODES.length
    const mode = MODES[i]
    const st = state[i]
    const stats = kills[i]
    if (!st.file || st.fileKills === KILLS_PER_FILE) {
      if (st.file) fs.rmSync(st.file)
      st.file = path.join(dir, `log-${i}-${stats.files++}.log`)
      st.count = 0
      st.fileKills = 0
    }
    const acked = await writeAndKill(mode, st.file)
    total++
    st.fileKills++
    stats.kills++
    stats.acknowledged += acked.length
    if (!acked.length) stats.killedBeforeFirstAck++
    let log
    try {
      log = fs.existsSync(st.file) ? readLog(st.file) : { valid: false, records: [] }
    } catch (e) {
      problem(`${mode.name}: ${e.message}`)
      continue
    }
    const ids = log.records.map((r) => r.id)
    // Ids are consecutive from 0 (each writer resumes after what it recovered), each intact.
    if (ids.some((id, k) => id !== k)) problem(`${mode.name}: ${st.file} holds ids out of order`)
    for (const r of log.records) {
      if (r.text !== `record ${r.id} `.repeat(1 + (r.id % 7))) problem(`${mode.name}: record ${r.id} has the wrong text`)
    }
    const lost = acked.filter((id) => id >= ids.length)
    stats.lost += lost.length
    if (lost.length) problem(`${mode.name}: acknowledged records ${lost.slice(0, 5)} are not in ${st.file}`)
    // At most the one record in flight when the kill came is committed without its ack.
    const expected = acked.length ? acked[acked.length - 1] + 1 : st.count
    const extra = ids.length - expected
    if (extra < 0 || extra > 1) problem(`${mode.name}: ${ids.length} records after acknowledgements up to ${expected - 1}`)
    else stats.committedUnacknowledged += extra
    st.count = ids.length
  }
}

const killing = killLoop()
const results = await Promise.all(children.map((c) => c.done))
sampling = false
await Promise.all([killing, sampler])
const seconds = (Date.now() - started) / 1000

// ---- what the actors found, and what was left behind ------------------------------------------

const ops = {}
let checks = 0
for (const r of results) {
  if (!r) continue
  for (const a of r.actors) {
    checks += a.checks
    for (const [op, n] of Object.entries(a.ops)) ops[op] = (ops[op] ?? 0) + n
    for (const p of a.problems) problem(p)
  }
  if (r.left.maps || r.left.fds) problem(`process ${r.pid}: ${r.left.maps} mappings and ${r.left.fds} fds of the soak files left after unmap/collection`)
}
const operations = Object.entries(ops).reduce((n, [op, k]) => (op === 'failed' ? n : n + k), 0)

// ---- growth ------------------------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[s.length >> 1] : NaN
}
const warmUp = Math.max(5, (opts.minutes * 60) / 5)
const processes = children.map((c, p) => {
  const after = c.samples.filter((s) => s.t >= warmUp)
  const third = Math.floor(after.length / 3)
  const entry = { process: p, samples: c.samples.length, warmUpSeconds: warmUp }
  if (third < 3) {
    problem(`process ${p}: only ${after.length} samples after the warm-up, too few to judge growth`)
    return entry
  }
  for (const metric of ['fds', 'maps', 'rss']) {
    const first = median(after.slice(0, third).map((s) => s[metric]))
    const last = median(after.slice(-third).map((s) => s[metric]))
    const { ratio, plus } = GROWTH_TOLERANCE[metric]
    const limit = first * ratio + plus
    entry[metric] = { start: c.samples[0][metric], firstThird: first, lastThird: last, limit, max: Math.max(...c.samples.map((s) => s[metric])) }
    if (last > limit) problem(`process ${p}: ${metric} grew from ${first} to ${last} (limit ${Math.round(limit)})`)
  }
  return entry
})

// ---- summary -----------------------------------------------------------------------------------

const totalKills = kills.reduce((n, k) => n + k.kills, 0)
const summary = {
  date: new Date().toISOString(),
  ok: problems.length === 0,
  seed: opts.seed,
  minutes: opts.minutes,
  seconds: Math.round(seconds),
  node: process.version,
  filesystem: fsType,
  processes: opts.processes,
  workersPerProcess: opts.workers,
  actors,
  operations,
  failedOperations: ops.failed ?? 0,
  ops,
  checks,
  kills: totalKills,
  killModes: kills,
  acknowledgedRecords: kills.reduce((n, k) => n + k.acknowledged, 0),
  lostRecords: kills.reduce((n, k) => n + k.lost, 0),
  growthTolerance: GROWTH_TOLERANCE,
  resources: processes,
  problems,
}
fs.mkdirSync(path.dirname(opts.out), { recursive: true })
fs.writeFileSync(opts.out, `${JSON.stringify(summary, null, 2)}\n`)

const mb = (n) => `${(n / MiB).toFixed(1)} MiB`
console.log(`soak: ${summary.seconds} s on ${fsType}, seed ${opts.seed}, ${opts.processes} processes × (${opts.workers} workers + main thread)`)
console.log(`  operations  ${operations} (${Object.entries(ops).map(([k, v]) => `${k} ${v}`).join(', ')}), ${checks} checks against the shadow`)
console.log(`  kill -9     ${totalKills} kills, ${summary.acknowledgedRecords} acknowledged records, ${summary.lostRecords} lost`)
for (const k of kills) {
  console.log(`              ${k.mode.padEnd(28)} ${String(k.kills).padStart(5)} kills (${k.killedBeforeFirstAck} before the first ack), ${k.acknowledged} acked, ${k.lost} lost, ${k.committedUnacknowledged} committed unacked, flush ${k.flushMethod}`)
}
for (const p of processes) {
  if (!p.fds) continue
  console.log(
    `  process ${p.process}   fds ${p.fds.firstThird} -> ${p.fds.lastThird}, maps ${p.maps.firstThird} -> ${p.maps.lastThird} lines, ` +
      `RSS ${mb(p.rss.firstThird)} -> ${mb(p.rss.lastThird)} (medians of the first and last thirds after ${p.warmUpSeconds} s; ${p.samples} samples)`,
  )
}
console.log(problems.length ? `FAILED:\n  ${problems.join('\n  ')}` : 'ok')
console.log(`summary: ${path.relative(process.cwd(), opts.out)}`)
process.exitCode = problems.length ? 1 : 0
