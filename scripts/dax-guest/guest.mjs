#!/usr/bin/env node
// A QEMU guest with emulated NVDIMMs: real fsdax (MAP_SYNC), real device DAX and, on request, a
// real eADR platform. The guest mounts the host's root over 9p and chroots into it, so it runs
// this machine's node, the built addon, cargo's test binaries and Debian's libpmem2.
//
//   node scripts/dax-guest/guest.mjs [options] [--] command [args...]
//
//   --mode LIST      fsdax, devdax, raw, eadr, or a comma list (default fsdax). Each of fsdax,
//                    devdax and raw is one NVDIMM with one namespace of that mode (raw: no DAX,
//                    ext4 on the page cache, for the power-cut control); eadr makes the
//                    platform's persistence domain the CPU cache (alone it means fsdax,devdax).
//   --images DIR     keep the NVDIMM images in DIR: a new image is provisioned (namespace,
//                    mkfs), an existing one is checked (e2fsck) and mounted as it is
//   --timeout SEC    kill the guest after SEC seconds (default 1200)
//
// The command runs as root in the repository, with the environment of guestEnvironment()
// (DAX_FSDAX_DIR, DAX_DEVDAX, DAX_EADR, ...); its output is the guest's console, its exit
// status this command's. TCG only: the guest kernel hangs under nested KVM on these machines.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(HERE, '../..')
const CACHE = path.join(ROOT, '.cache/dax-guest')
const STATUS = /^@@dax-guest-status (\d+)$/

/** Debian packages the guest needs on the host (the guest runs the host's programs). */
const PACKAGES = [
  'qemu-system-x86', // the emulator
  'linux-image-amd64', // the guest kernel and its nvdimm, dax, ext4 and 9p modules
  'busybox-static', // the initramfs
  'cpio',
  'ndctl', // namespaces, inside the guest
  'e2fsprogs', // mkfs.ext4 and e2fsck, inside the guest
  'strace',
  'libpmem2-dev',
  'pkg-config',
  'gcc',
]
/** Modules the initramfs loads to reach the host's root; the chroot loads the rest. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p']
/** Each NVDIMM's size: room for the conformance fixtures and the power-cut logs. */
export const NVDIMM_SIZE = 512 << 20

const log = (msg) => process.stderr.write(`dax-guest: ${msg}\n`)

/** Installs the missing packages (idempotent: apt-get runs only when something is missing). */
export function ensurePackages() {
  const missing = PACKAGES.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' })
    return !r.stdout.includes('install ok installed')
  })
  if (missing.length === 0) return
  if (process.getuid() !== 0) throw new Error(`install these packages first (as root): ${missing.join(' ')}`)
  log(`installing ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env })
}

/** The newest installed kernel that has its modules: { version, vmlinuz }. */
export function guestKernel() {
  const versions = fs
    .readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => fs.existsSync(`/lib/modules/${v}/modules.dep`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
  const version = versions.at(-1)
  if (!version) throw new Error('no kernel in /boot with modules in /lib/modules (apt-get install linux-image-amd64)')
  return { version, vmlinuz: `/boot/vmlinuz-${version}` }
}

/** The module files `name` needs, dependencies first, from modprobe's own resolution. */
function moduleFiles(version, name) {
  const out = execFileSync('modprobe', ['-S', version, '--show-depends', name], { encoding: 'utf8' })
  return out
    .split('\n')
    .filter((l) => l.startsWith('insmod '))
    .map((l) => l.split(' ')[1])
}

/**
 * The initramfs for `kernel`, built once and cached under .cache/dax-guest, keyed by the kernel
 * version and the content of `init`.
 */
export function initramfs(kernel) {
  const init = fs.readFileSync(path.join(HERE, 'init'))
  const key = createHash('sha256').update(init).update(INITRAMFS_MODULES.join()).digest('hex').slice(0, 12)
  const file = path.join(CACHE, `initramfs-${kernel.version}-${key}.cpio.gz`)
  if (fs.existsSync(file)) return file
  log(`building ${path.relative(ROOT, file)}`)
  fs.mkdirSync(CACHE, { recursive: true })
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'dax-initramfs-'))
  try {
    for (const d of ['bin', 'modules', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(tree, d))
    fs.copyFileSync('/bin/busybox', path.join(tree, 'bin/busybox'))
    fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755)
    fs.writeFileSync(path.join(tree, 'init'), init, { mode: 0o755 })
    const order = []
    for (const m of INITRAMFS_MODULES) {
      for (const ko of moduleFiles(kernel.version, m)) {
        const base = path.basename(ko)
        if (order.includes(base)) continue
        if (!ko.endsWith('.ko')) throw new Error(`compressed module ${ko}: busybox insmod needs plain .ko files`)
        fs.copyFileSync(ko, path.join(tree, 'modules', base))
        order.push(base)
      }
    }
    fs.writeFileSync(path.join(tree, 'modules.list'), order.join('\n') + '\n')
    const tmp = `${file}.${process.pid}`
    execFileSync('sh', ['-c', `find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -1 > '${tmp}'`], {
      cwd: tree,
    })
    fs.renameSync(tmp, file)
  } finally {
    fs.rmSync(tree, { recursive: true, force: true })
  }
  return file
}

/** Parses a --mode value: { namespaces: ['fsdax', 'devdax'], eadr }. */
export function parseMode(mode) {
  const words = mode.split(',').filter(Boolean)
  const bad = words.filter((w) => !['fsdax', 'devdax', 'raw', 'eadr'].includes(w))
  if (bad.length || words.length === 0) throw new Error(`bad --mode ${mode}: use fsdax, devdax, raw, eadr or a comma list`)
  const namespaces = words.filter((w) => w !== 'eadr')
  const eadr = words.includes('eadr')
  return { namespaces: namespaces.length ? namespaces : ['fsdax', 'devdax'], eadr }
}

/** The images of a guest with `count` NVDIMMs in `dir`, and whether they are new. */
function images(dir, count) {
  fs.mkdirSync(dir, { recursive: true })
  const files = Array.from({ length: count }, (_, i) => path.join(dir, `nvdimm${i}.img`))
  const fresh = files.map((f) => !fs.existsSync(f))
  for (const [i, f] of files.entries()) {
    if (fresh[i]) {
      fs.writeFileSync(f, '')
      fs.truncateSync(f, NVDIMM_SIZE) // sparse: the guest touches what it uses
    }
  }
  return { files, fresh }
}

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`

/**
 * Boots a guest and runs `command` (an array: program and arguments, run with bash's exec; or a
 * string: a bash script) in `cwd` with `env` added.
 *
 * Returns { child, done } at once: `child` is the QEMU process (kill it with SIGKILL for a power
 * cut), `done` resolves to { status, killed, lines } when QEMU exits: the job's exit status
 * (null if it did not report one), whether QEMU died of a signal, and the console lines. Every
 * console line also goes to `onLine` as it arrives.
 */
export function boot({ mode = 'fsdax', imageDir, command, cwd = ROOT, env = {}, onLine, timeout = 1200 }) {
  ensurePackages()
  const kernel = guestKernel()
  const initrd = initramfs(kernel)
  const { namespaces, eadr } = parseMode(mode)
  const temporary = !imageDir
  const jobDir = fs.mkdtempSync(path.join(CACHE, 'job-'))
  const dir = imageDir ?? jobDir
  const { files, fresh } = images(dir, namespaces.length)
  if (new Set(fresh).size > 1) throw new Error(`${dir}: some NVDIMM images exist and some do not`)
  const script = [
    '#!/bin/bash',
    '# Written by scripts/dax-guest/guest.mjs; runs in the guest, chrooted into the host root.',
    `export DAX_NAMESPACES=${namespaces.join(',')} DAX_FRESH=${fresh[0] ? 1 : 0}`,
    `bash ${quote(path.join(HERE, 'provision.sh'))} || exit 90`,
    '. /run/dax-guest/env',
    ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
    `cd ${quote(cwd)} || exit 91`,
    Array.isArray(command) ? `exec ${command.map(quote).join(' ')}` : command,
    '',
  ].join('\n')
  const job = path.join(jobDir, 'job.sh')
  fs.writeFileSync(job, script)

  const machine = `pc,nvdimm=on${eadr ? ',nvdimm-persistence=cpu' : ''}`
  const args = [
    ...['-machine', machine, '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '2'],
    ...['-m', `2G,slots=${namespaces.length + 1},maxmem=${2 + namespaces.length}G`],
    ...files.flatMap((f, i) => [
      '-object',
      `memory-backend-file,id=mem${i},share=on,mem-path=${f},size=${NVDIMM_SIZE},align=2M`,
      '-device',
      `nvdimm,memdev=mem${i},id=nv${i}`,
    ]),
    ...['-kernel', kernel.vmlinuz, '-initrd', initrd],
    ...['-append', `console=ttyS0 rdinit=/init loglevel=4 panic=-1 daxjob=${job}`],
    ...['-virtfs', 'local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap'],
    ...['-nodefaults', '-display', 'none', '-no-reboot'],
    ...['-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console'],
  ]
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines = []
  let status = null
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => {
    log(`timeout after ${timeout} s: killing the guest`)
    child.kill('SIGKILL')
  }, timeout * 1000)
  const rl = readline.createInterface({ input: child.stdout, crlfDelay: Infinity })
  rl.on('line', (raw) => {
    const line = raw.replace(/\r/g, '')
    const m = STATUS.exec(line)
    if (m) {
      status = Number(m[1])
      return
    }
    lines.push(line)
    onLine?.(line)
  })
  const done = new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (temporary) fs.rmSync(jobDir, { recursive: true, force: true })
      else fs.rmSync(job, { force: true })
      if (!signal && code !== 0) return reject(new Error(`qemu exited with ${code}: ${stderr.trim()}`))
      resolve({ status, killed: signal !== null, lines })
    })
  })
  return { child, done }
}

async function main(argv) {
  let mode = 'fsdax'
  let imageDir
  let timeout = 1200
  const command = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (command.length === 0 && a === '--mode') mode = argv[++i]
    else if (command.length === 0 && a === '--images') imageDir = path.resolve(argv[++i])
    else if (command.length === 0 && a === '--timeout') timeout = Number(argv[++i])
    else if (command.length === 0 && a === '--') command.push(...argv.slice(i + 1)) && (i = argv.length)
    else if (command.length === 0 && a.startsWith('-')) throw new Error(`unknown option ${a}`)
    else command.push(a)
  }
  if (command.length === 0) throw new Error('usage: guest.mjs [--mode LIST] [--images DIR] [--timeout SEC] [--] command...')
  const start = Date.now()
  const { done } = boot({ mode, imageDir, command, cwd: process.cwd(), onLine: (l) => console.log(l), timeout })
  const { status } = await done
  log(`guest finished in ${((Date.now() - start) / 1000).toFixed(1)} s, status ${status ?? 'unknown'}`)
  process.exitCode = status ?? 1
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).catch((e) => {
    log(e.message)
    process.exit(1)
  })
}
