// The `pmem2` command (bin/pmem2.mjs): info and bench, text and --json, one-line errors.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { makeFile, MiB, tempDir } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = path.join(root, 'bin', 'pmem2.mjs')
const dir = tempDir()

function pmem2(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env } })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The temporary files info/bench left behind in os.tmpdir(). */
const leftovers = () => fs.readdirSync(os.tmpdir()).filter((n) => /^pmem2-[A-Za-z0-9]{6}$/.test(n))

test('package.json declares the command and ships bin/', (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  t.deepEqual(pkg.bin, { pmem2: 'bin/pmem2.mjs' })
  t.true(pkg.files.includes('bin/'))
  t.regex(fs.readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/)
  t.true((fs.statSync(bin).mode & 0o111) !== 0, 'executable')
})

/** What the kernel says about this CPU and machine, independently of pmem2's own detection. */
function machine() {
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(' ') ?? [])
  const pageSize = Number(spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).stdout.trim())
  // eADR: a region whose persistence domain is the CPU cache (no nd bus on a machine without pmem).
  const regions = '/sys/bus/nd/devices'
  const eadr =
    fs.existsSync(regions) &&
    fs.readdirSync(regions).some((r) => {
      try {
        return fs.readFileSync(path.join(regions, r, 'persistence_domain'), 'utf8').trim() === 'cpu_cache'
      } catch {
        return false
      }
    })
  const flush = flags.has('clwb') ? 'clwb' : flags.has('clflushopt') ? 'clflushopt' : 'clflush'
  const copyIsa = flags.has('avx512f') ? 'avx512f' : flags.has('avx') ? 'avx' : 'sse2'
  return { flags, pageSize, eadr, flush, copyIsa, movdir64b: flags.has('movdir64b') }
}

test('info --json on a temporary file: regular, the filesystem df names, PAGE via msync, the CPU as /proc/cpuinfo says', (t) => {
  if (process.arch !== 'x64') {
    t.log(`instruction names checked against /proc/cpuinfo on x64 only (this is ${process.arch})`)
  }
  const before = new Set(leftovers())
  const r = pmem2(['info', '--json'], { PMEM_NO_CLWB: '', PMEM_NO_CLFLUSHOPT: '', PMEM_NO_MOVNT: '', PMEM_AVX512F: '', PMEM_AVX: '' })
  t.is(r.status, 0, r.stderr)
  const info = JSON.parse(r.stdout)
  const m = machine()
  t.like(info, {
    temporary: true,
    fileType: 'regular',
    size: 2 * MiB,
    writable: true,
    mapSync: false,
    granularity: 'PAGE',
    flushMethod: 'msync',
    eadr: m.eadr,
    movntThreshold: 256,
    alignment: m.pageSize,
    pageSize: m.pageSize,
  })
  if (process.arch === 'x64') {
    t.like(info, { flushInstruction: m.flush, copyIsa: m.copyIsa, movdir64b: m.movdir64b })
  }
  t.true(info.path.startsWith(os.tmpdir()))
  t.false(fs.existsSync(info.path), 'the temporary file is removed')
  t.deepEqual(leftovers().filter((n) => !before.has(n)), [])
  // The filesystem is the one /proc/self/mountinfo names for the temporary directory.
  const df = spawnSync('df', ['--output=fstype,target', os.tmpdir()], { encoding: 'utf8' }).stdout.trim().split('\n')
  const [fstype, target] = df[df.length - 1].split(/\s+/)
  t.is(info.filesystem.type, fstype)
  t.is(info.filesystem.mountPoint, target)
})

test('info on a given file does not change it; text output has every field', (t) => {
  const file = makeFile(dir, 'inspected', 4 * MiB)
  fs.writeFileSync(file, 'keep me', { flag: 'r+' })
  const old = new Date('2020-01-01T00:00:00Z')
  fs.utimesSync(file, old, old)
  const r = pmem2(['info', file])
  t.is(r.status, 0, r.stderr)
  for (const key of [
    'path', 'file type', 'size', 'filesystem', 'MAP_SYNC', 'granularity', 'persist', 'eADR',
    'flush instruction', 'copy instructions', 'alignment', 'page size',
  ]) {
    t.regex(r.stdout, new RegExp(`^${key} +\\S`, 'm'), key)
  }
  t.regex(r.stdout, /^file type +regular file$/m)
  t.regex(r.stdout, /^size +4194304 bytes$/m)
  t.regex(r.stdout, /^MAP_SYNC +not granted$/m)
  t.regex(r.stdout, /^granularity +PAGE$/m)
  t.regex(r.stdout, /^persist +msync/m)
  t.is(fs.statSync(file).mtimeMs, old.getTime(), 'mtime unchanged')
  t.is(fs.statSync(file).size, 4 * MiB)
  t.is(fs.readFileSync(file).subarray(0, 7).toString(), 'keep me')
})

test('info: forced CACHE_LINE shows the flush instruction; an empty file explains itself', (t) => {
  const forced = JSON.parse(pmem2(['info', '--json'], { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE' }).stdout)
  t.is(forced.granularity, 'CACHE_LINE')
  t.is(forced.flushMethod, forced.flushInstruction)
  t.true(forced.notes.some((n: string) => n.includes('PMEM2_FORCE_GRANULARITY')))
  const empty = pmem2(['info', '--json', makeFile(dir, 'empty', 0)])
  t.is(empty.status, 0, empty.stderr)
  const info = JSON.parse(empty.stdout)
  t.is(info.granularity, null)
  t.true(info.notes.some((n: string) => n.includes('PMEM2_E_SOURCE_EMPTY')))
})

test('errors print one line and exit non-zero', (t) => {
  const cases: [string[], number, RegExp][] = [
    [['info', path.join(dir, 'missing')], 1, /no such file/],
    [['info', dir], 1, /is a directory/],
    [['info', '/dev/null'], 1, /not device DAX.*PMEM2_E_INVALID_FILE_TYPE/],
    [['bench', path.join(root, 'package.json')], 1, /would overwrite it/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    [['info', '--bogus'], 2, /Unknown option '--bogus'/],
    [['info', 'a', 'b'], 2, /unexpected argument b/],
  ]
  for (const [args, status, message] of cases) {
    const r = pmem2(args)
    const what = args.join(' ')
    t.is(r.status, status, what)
    t.is(r.stdout, '', what)
    t.regex(r.stderr, /^pmem2: [^\n]+\n$/, `one line: ${what}: ${JSON.stringify(r.stderr)}`)
    t.regex(r.stderr, message, what)
  }
})

test('--help, no command, --version', (t) => {
  const help = pmem2(['--help'])
  t.is(help.status, 0)
  t.regex(help.stdout, /^Usage: pmem2 <command>/)
  t.regex(help.stdout, /info \[path\]/)
  t.regex(help.stdout, /bench \[path\]/)
  t.is(pmem2([]).status, 2, 'no command is a usage error, with the usage on stdout')
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  t.is(pmem2(['--version']).stdout, `${pkg.version}\n`)
})

test('bench prints a table of persist and write medians on a temporary file', (t) => {
  const before = new Set(leftovers())
  const r = pmem2(['bench'])
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /^pmem2 bench: .* \(temporary file, 8 MiB\), granularity PAGE, persist by msync$/m)
  t.regex(r.stdout, /^operation +size +min +median +max +ops\/s +MB\/s$/m)
  const time = '[\\d.]+ [nµm]?s'
  for (const row of [new RegExp(`^persist +64 B +${time} +${time} +${time} +\\d+ +[\\d.]+$`, 'm'), /^persist +4 KiB /m, /^write +4 KiB /m, /^write +1 MiB /m]) {
    t.regex(r.stdout, row)
  }
  t.deepEqual(leftovers().filter((n) => !before.has(n)), [])
})

test('bench --json in a given directory: medians are positive and the file is removed', (t) => {
  const where = fs.mkdtempSync(path.join(dir, 'bench-'))
  const r = pmem2(['bench', where, '--json'])
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.is(path.dirname(path.dirname(out.path)), where)
  t.deepEqual(fs.readdirSync(where), [], 'nothing left behind')
  const ops = out.results.map((x: { operation: string; size: number }) => `${x.operation} ${x.size}`)
  t.deepEqual(ops.slice(0, 4), ['persist 64', 'persist 4096', 'write 4096', 'write 1048576'])
  for (const x of out.results) {
    t.true(x.medianNs > 0 && x.runs >= 5 && x.opsPerSecond > 0, JSON.stringify(x))
    t.true(x.minNs <= x.medianNs && x.medianNs <= x.maxNs, JSON.stringify(x))
  }
  // A new file name is created and removed again.
  const named = path.join(where, 'named.bin')
  t.is(pmem2(['bench', named, '--json']).status, 0)
  t.false(fs.existsSync(named))
})

test('with --json, errors are JSON on stdout with the code and exit status', (t) => {
  const cases: [string[], number, string][] = [
    [['info', '--json', path.join(dir, 'missing')], 1, 'ENOENT'],
    [['info', '--json', '/dev/null'], 1, 'PMEM2_E_INVALID_FILE_TYPE'],
    [['frobnicate', '--json'], 2, 'ERR_USAGE'],
    [['info', '--json', '--bogus'], 2, 'ERR_USAGE'],
  ]
  for (const [args, status, code] of cases) {
    const r = pmem2(args)
    t.is(r.status, status, args.join(' '))
    t.is(r.stderr, '', args.join(' '))
    const out = JSON.parse(r.stdout)
    t.like(out, { error: { code, exitCode: status } }, args.join(' '))
    t.is(typeof out.error.message, 'string')
  }
})

test('info names the file the user gave, never an fd the command opened', (t) => {
  const r = pmem2(['info', '/dev/null'])
  t.regex(r.stderr, /^pmem2: \/dev\/null is character device/)
  t.notRegex(r.stderr, /fd \d/)
})

test('bench never follows a symbolic link, dangling or not, and creates nothing', (t) => {
  const where = fs.mkdtempSync(path.join(dir, 'links-'))
  const target = path.join(where, 'target.bin')
  const link = path.join(where, 'link.bin')
  fs.symlinkSync(target, link)
  const r = pmem2(['bench', link])
  t.is(r.status, 1)
  t.regex(r.stderr, /is a symbolic link and bench would overwrite it/)
  t.false(fs.existsSync(target), 'nothing created at the link target')
  t.deepEqual(fs.readdirSync(where).sort(), ['link.bin'])
})

test('output piped into a reader that goes away ends quietly (EPIPE)', async (t) => {
  for (const args of [['info'], ['info', '--json'], ['--help']]) {
    // The read end is closed before the command writes anything, so its first write fails with
    // EPIPE every time (Node ignores SIGPIPE), as `pmem2 info | head -1` does at some write.
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy()
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const status = await new Promise((resolve) => child.on('close', (code) => resolve(code)))
    t.is(stderr, '', args.join(' '))
    t.is(status, 0, args.join(' '))
  }
})

test('info and bench end quietly when the reader of their output goes away (EPIPE)', (t) => {
  for (const args of [['info'], ['info', '--json'], ['bench', '--json']]) {
    const before = new Set(leftovers())
    // `true` exits without reading, long before Node has started and writes.
    const r = spawnSync('bash', ['-c', 'set -o pipefail; "$0" "$@" | true', process.execPath, bin, ...args], {
      encoding: 'utf8',
    })
    t.is(r.stderr, '', args.join(' '))
    t.is(r.status, 0, args.join(' '))
    t.deepEqual(leftovers().filter((n) => !before.has(n)), [], `nothing left behind by ${args.join(' ')}`)
  }
})

