#!/usr/bin/env node
// The `pmem2` command: what a file would get (`info`) and how fast persisting is (`bench`).
// Plain ESM, no dependencies besides this package. Errors print one line and exit non-zero.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs as parseNodeArgs } from 'node:util'

import { Granularity, mapFile, platformInfo, Pmem2Error, Sharing, Source } from '../index.mjs'

const USAGE = `Usage: pmem2 <command> [options]

Commands:
  info [path]    What mapping <path> gives: file type, filesystem, MAP_SYNC, granularity,
                 eADR, flush and copy instructions, alignment (a temporary file without a path)
  bench [path]   A short persist/write benchmark on a temporary file (in <path> if it is a
                 directory, or the new file <path>, removed afterwards)

Options:
  --json         Machine-readable output
  -h, --help     This help
  -v, --version  The package version`

class UsageError extends Error {}

const GRANULARITY = ['BYTE', 'CACHE_LINE', 'PAGE']

// Set once the arguments are parsed, so that errors are JSON too with --json.
let jsonOutput = false

function fail(message, code = 1, errorCode = undefined) {
  if (jsonOutput) {
    process.stdout.write(`${JSON.stringify({ error: { message, code: errorCode ?? null, exitCode: code } })}\n`)
  } else {
    process.stderr.write(`pmem2: ${message}\n`)
  }
  process.exit(code)
}

function parseArgs(argv) {
  let parsed
  try {
    parsed = parseNodeArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    })
  } catch (e) {
    // parseArgs names the problem (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...); keep its first line.
    jsonOutput = argv.includes('--json')
    throw new UsageError(`${e.message.split('\n')[0].replace(/\. To specify a positional.*$/, '')} (see pmem2 --help)`)
  }
  const { values, positionals } = parsed
  jsonOutput = values.json
  if (positionals.length > 2) throw new UsageError(`unexpected argument ${positionals[2]} (see pmem2 --help)`)
  return { command: positionals[0], path: positionals[1], json: values.json, help: values.help, version: values.version }
}

/** A temporary directory, removed on exit. */
function tempDir(parent = os.tmpdir()) {
  const dir = fs.mkdtempSync(path.join(parent, 'pmem2-'))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Decodes the octal escapes of /proc/self/mountinfo (`\040` is a space). */
const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))

/** The mount containing `file`: the longest mount point that is a prefix of its real path. */
function mountOf(file) {
  let real
  try {
    real = fs.realpathSync(file)
  } catch {
    real = path.resolve(file)
  }
  let text
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return undefined
  }
  let best
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ')
    if (!right) continue
    const fields = left.split(' ')
    const [fstype, source, superOptions] = right.split(' ')
    const mountPoint = unescape(fields[4])
    const inside = mountPoint === '/' || real === mountPoint || real.startsWith(mountPoint + '/')
    // Later lines win for the same mount point: they are mounted on top.
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) {
      best = { type: fstype, mountPoint, source: unescape(source), options: `${fields[5]},${superOptions ?? ''}` }
    }
  }
  if (!best) return undefined
  const dax = best.options.split(',').find((o) => o === 'dax' || o.startsWith('dax='))
  return { type: best.type, mountPoint: best.mountPoint, source: best.source, dax: dax ?? null }
}

function canWrite(file) {
  try {
    fs.closeSync(fs.openSync(file, 'r+'))
    return true
  } catch {
    return false
  }
}

function info(target) {
  const temporary = target === undefined
  let file = target
  if (temporary) {
    file = path.join(tempDir(), 'info.bin')
    fs.writeFileSync(file, '')
    fs.truncateSync(file, 2 << 20)
  }
  let stat
  try {
    stat = fs.statSync(file)
  } catch (e) {
    throw Object.assign(new Error(`${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`), { code: e.code })
  }
  if (stat.isDirectory()) throw new Error(`${file} is a directory; pass a file (or no path for a temporary file)`)
  const fileType = stat.isCharacterDevice() ? 'devdax' : stat.isFile() ? 'regular' : 'other'
  if (fileType === 'other') throw new Error(`${file} is neither a regular file nor a device DAX`)
  const writable = canWrite(file)
  const fd = fs.openSync(file, writable ? 'r+' : 'r')
  let size, alignment
  try {
    const source = Source.fromFd(fd) // reads the fd when asked: use it before closing
    size = source.size
    alignment = source.alignment
  } catch (e) {
    // The user named a file, not the fd this command opened: say which file.
    if (e instanceof Error) e.message = e.message.replaceAll(`fd ${fd}`, file)
    throw e
  } finally {
    fs.closeSync(fd)
  }
  const platform = platformInfo()
  const notes = []
  const result = {
    path: path.resolve(file),
    temporary,
    fileType,
    size,
    filesystem: fileType === 'devdax' ? null : (mountOf(file) ?? null),
    writable,
    mapSync: null,
    granularity: null,
    flushMethod: null,
    eadr: platform.eadr,
    flushInstruction: platform.flushInstruction,
    copyIsa: platform.copyIsa,
    movdir64b: platform.movdir64b,
    movntThreshold: platform.movntThreshold,
    alignment,
    pageSize: platform.pageSize,
    notes,
  }
  if (size === 0) {
    notes.push('the file is empty: mapping it fails with PMEM2_E_SOURCE_EMPTY (give it a size first)')
  } else {
    // Shared, PAGE (accepted everywhere); read-write only when the file allows it. Nothing is
    // written: the mapping is made, inspected and unmapped.
    const mapping = mapFile(file, { granularity: Granularity.Page, sharing: Sharing.Shared, readOnly: !writable })
    try {
      result.mapSync = mapping.mapSync
      result.granularity = GRANULARITY[mapping.storeGranularity]
      result.flushMethod = mapping.flushMethod
    } finally {
      mapping.unmap()
    }
    if (!writable) {
      notes.push('mapped read-only (the file is not writable): MAP_SYNC needs a shared writable mapping on DAX, so a writable mapping may get CACHE_LINE where this one did not')
    }
  }
  if (process.env.PMEM2_FORCE_GRANULARITY) {
    notes.push(`PMEM2_FORCE_GRANULARITY=${process.env.PMEM2_FORCE_GRANULARITY} overrides the detected granularity`)
  }
  if (result.filesystem?.dax && !result.mapSync && writable && size > 0) {
    notes.push('the filesystem is mounted with DAX, but the kernel did not grant MAP_SYNC for this file')
  }
  if (temporary) notes.push(`a temporary file in ${os.tmpdir()} (pass a path to inspect another file)`)
  return result
}

function printInfo(r) {
  const fsText = r.filesystem
    ? `${r.filesystem.type} at ${r.filesystem.mountPoint} (${r.filesystem.source}${r.filesystem.dax ? `, ${r.filesystem.dax}` : ''})`
    : r.fileType === 'devdax'
      ? 'none (device DAX)'
      : 'unknown'
  const rows = [
    ['path', `${r.path}${r.temporary ? ' (temporary)' : ''}`],
    ['file type', r.fileType === 'devdax' ? 'device DAX' : 'regular file'],
    ['size', `${r.size} bytes`],
    ['filesystem', fsText],
    ['MAP_SYNC', r.mapSync === null ? 'unknown (not mapped)' : r.mapSync ? 'granted' : 'not granted'],
    ['granularity', r.granularity ?? 'unknown (not mapped)'],
    ['persist', r.flushMethod === null ? 'unknown' : describeFlush(r.flushMethod)],
    ['eADR', r.eadr ? 'yes (CPU caches are persistent)' : 'no'],
    ['flush instruction', `${r.flushInstruction} (for CACHE_LINE mappings)`],
    ['copy instructions', `${r.copyIsa}${r.movdir64b ? ' + movdir64b' : ''}, non-temporal from ${r.movntThreshold} bytes`],
    ['alignment', `${r.alignment} bytes (offsets and lengths)`],
    ['page size', `${r.pageSize} bytes`],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`)
  for (const note of r.notes) process.stdout.write(`note: ${note}\n`)
}

function describeFlush(method) {
  if (method === 'msync') return 'msync (page cache)'
  if (method === 'none') return 'a fence (stores are durable once they leave the CPU)'
  return `${method} + sfence per cache line`
}

// ---------------------------------------------------------------- bench

const BENCH_SIZE = 8 << 20

function formatBytes(n) {
  return n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`
}

function formatTime(ns) {
  if (ns < 1e3) return `${ns.toFixed(0)} ns`
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`
  return `${(ns / 1e6).toFixed(2)} ms`
}

/** Runs `op(i)` until 150 ms or 2000 runs (at least 5); returns min, median and max in nanoseconds. */
function measure(op) {
  const times = []
  const deadline = process.hrtime.bigint() + 150_000_000n
  for (let i = 0; i < 2000 && (i < 5 || process.hrtime.bigint() < deadline); i++) {
    const start = process.hrtime.bigint()
    op(i)
    times.push(Number(process.hrtime.bigint() - start))
  }
  times.sort((a, b) => a - b)
  return { min: times[0], median: times[times.length >> 1], max: times[times.length - 1], runs: times.length }
}

/**
 * Creates the bench file and returns where it is. `wx` is O_CREAT | O_EXCL: it refuses any
 * existing path, a dangling symbolic link included, so bench never follows a link and never
 * touches a file it did not create; what it creates is removed on exit.
 */
function benchFile(target) {
  if (target === undefined) return { file: path.join(tempDir(), 'bench.bin'), where: 'temporary' }
  let stat
  try {
    stat = fs.lstatSync(target) // a symlink, even a dangling one, is never followed
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`${target}: ${e.message}`)
  }
  if (stat?.isDirectory()) return { file: path.join(tempDir(target), 'bench.bin'), where: 'temporary' }
  if (stat) {
    const what = stat.isSymbolicLink() ? 'is a symbolic link' : 'exists'
    throw new Error(`${target} ${what} and bench would overwrite it; pass a directory or a new file name`)
  }
  // O_CREAT | O_EXCL: fails on any existing path, a symlink made meanwhile included.
  fs.closeSync(fs.openSync(target, 'wx'))
  process.on('exit', () => fs.rmSync(target, { force: true }))
  return { file: target, where: 'new' }
}

function bench(target) {
  const { file, where } = benchFile(target)
  const mapping = mapFile(file, { size: BENCH_SIZE, create: true })
  const results = []
  try {
    const buffer = (() => {
      try {
        return mapping.buffer
      } catch {
        return undefined // no external buffers in this runtime: persist-only rows are skipped
      }
    })()
    const slots = (size) => Math.max(1, Math.floor(BENCH_SIZE / size))
    const add = (operation, size, op) => {
      const { min, median, max, runs } = measure(op)
      results.push({
        operation,
        size,
        minNs: min,
        medianNs: median,
        maxNs: max,
        opsPerSecond: Math.round(1e9 / median),
        mbPerSecond: Math.round((size / median) * 1e9 / 1e6 * 10) / 10,
        runs,
      })
    }
    for (const size of [64, 4096]) {
      if (!buffer) break
      // Dirty the bytes first (untimed), as a program would before persisting them.
      add('persist', size, (i) => {
        const offset = (i % slots(4096)) * 4096
        buffer[offset] = i & 0xff
        mapping.persist(offset, size)
      })
    }
    for (const size of [4096, 1 << 20]) {
      const data = Buffer.alloc(size, 0xa5)
      add('write', size, (i) => mapping.write((i % slots(size)) * size, data))
    }
    if (typeof mapping.memcpy === 'function') {
      for (const size of [4096, 1 << 20]) {
        const data = Buffer.alloc(size, 0x5a)
        add('memcpy', size, (i) => mapping.memcpy((i % slots(size)) * size, data))
      }
    }
    return {
      path: path.resolve(file),
      file: where,
      size: BENCH_SIZE,
      granularity: GRANULARITY[mapping.storeGranularity],
      flushMethod: mapping.flushMethod,
      mapSync: mapping.mapSync,
      results,
    }
  } finally {
    mapping.unmap()
  }
}

function printBench(r) {
  process.stdout.write(
    `pmem2 bench: ${r.path} (${r.file} file, ${formatBytes(r.size)}), granularity ${r.granularity}, ` +
      `persist by ${r.flushMethod}${r.mapSync ? ', MAP_SYNC' : ''}\n\n`,
  )
  const header = ['operation', 'size', 'min', 'median', 'max', 'ops/s', 'MB/s']
  const rows = r.results.map((x) => [
    x.operation,
    formatBytes(x.size),
    formatTime(x.minNs),
    formatTime(x.medianNs),
    formatTime(x.maxNs),
    String(x.opsPerSecond),
    x.mbPerSecond.toFixed(1),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
  const line = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`)
  for (const row of rows) process.stdout.write(`${line(row)}\n`)
  process.stdout.write('\nops/s and MB/s are from the median; min and max show the spread of single calls.\n')
}

// ---------------------------------------------------------------- main

function main() {
  // `pmem2 info | head -1`: the reader went away; that is not an error of this command.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e) => {
      if (e.code === 'EPIPE') process.exit(0)
      throw e
    })
  }
  let args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (e) {
    fail(e.message, 2, 'ERR_USAGE')
  }
  if (args.version) {
    const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'))
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  if (args.help || args.command === undefined || args.command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    if (!args.help && args.command === undefined) process.exitCode = 2
    return
  }
  try {
    if (args.command === 'info') {
      const r = info(args.path)
      if (args.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`)
      else printInfo(r)
    } else if (args.command === 'bench') {
      const r = bench(args.path)
      if (args.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`)
      else printBench(r)
    } else {
      fail(`unknown command ${JSON.stringify(args.command)} (commands: info, bench; see pmem2 --help)`, 2, 'ERR_USAGE')
    }
  } catch (e) {
    const code = e instanceof Pmem2Error || typeof e.code === 'string' ? e.code : undefined
    fail(`${e.message.split('\n')[0]}${code && !jsonOutput ? ` [${code}]` : ''}`, 1, code)
  }
}

main()
