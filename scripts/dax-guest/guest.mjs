#!/usr/bin/env node
// A QEMU guest with emulated NVDIMMs: real fsdax (MAP_SYNC), real device DAX and, on request, a
// real eADR platform. The guest mounts the host's root over 9p and chroots into it, so it runs
// this machine's node, the built addon, cargo's test binaries and Debian's libpmem2.
//
//   node scripts/dax-guest/guest.mjs [options] [--] command [args...]
//
//   --mode LIST      fsdax, devdax, raw, eadr, virtio, or a comma list (default fsdax). Each of
//                    fsdax, devdax and raw is one NVDIMM with one namespace of that mode (raw: no
//                    DAX, ext4 on the page cache, for the power-cut control); eadr makes the
//                    platform's persistence domain the CPU cache (alone it means fsdax,devdax);
//                    virtio adds a virtio-pmem device (a region with an explicit flush)
//                    as a device DAX.
//   --images DIR     keep the NVDIMM images in DIR: a new image is a copy of a provisioned
//                    template, an existing one is checked (e2fsck) and mounted as it is
//   --timeout SEC    kill the guest after SEC seconds (default 1200)
//
// The command runs as root in the repository, with the environment provision.sh writes
// (DAX_FSDAX_DIR, DAX_DEVDAX, DAX_EADR, ...); its output is the guest's console, its exit
// status this command's. TCG only: the guest kernel hangs under nested KVM on these machines.
//
// Files: .cache/dax-guest holds what is slow to make and keyed by its inputs (the initramfs,
// the uncompressed kernel, the provisioned NVDIMM templates); target/dax-guest holds the job
// scripts of running guests (removed when they end) and what the tier builds.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(HERE, '../..')
const CACHE = path.join(ROOT, '.cache/dax-guest')
/** Scratch space of the tier inside target/ (ignored by git, like every build product). */
export const SCRATCH = path.join(ROOT, 'target/dax-guest')
const STATUS = /^@@dax-guest-status (\d+)$/
/** qboot (from qemu-system-data) starts a Linux kernel sooner than SeaBIOS; used when present. */
const QBOOT = '/usr/share/qemu/qboot.rom'

/** Debian packages the guest needs on the host (the guest runs the host's programs). */
const PACKAGES = [
  'qemu-system-x86', // the emulator
  'linux-image-amd64', // the guest kernel and its nvdimm, dax, ext4 and 9p modules
  'busybox-static', // the initramfs
  'cpio',
  'xz-utils', // to unpack the kernel once for a direct (PVH) boot
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
/** The virtio-pmem device's size: it only has to exist. */
const VIRTIO_PMEM_SIZE = 128 << 20
/** The NVDIMM kinds a template is provisioned for. */
const KINDS = ['fsdax', 'devdax', 'raw']

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

/** Whether `elf` (a 64-bit ELF image) has Xen's PVH entry note, which lets QEMU start it directly. */
function hasPvhEntry(elf) {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false
  const phoff = Number(elf.readBigUInt64LE(0x20))
  const phentsize = elf.readUInt16LE(0x36)
  for (let i = 0; i < elf.readUInt16LE(0x38); i++) {
    const ph = phoff + i * phentsize
    if (elf.readUInt32LE(ph) !== 4) continue // PT_NOTE
    let note = Number(elf.readBigUInt64LE(ph + 8))
    const end = note + Number(elf.readBigUInt64LE(ph + 0x20))
    while (note + 12 <= end) {
      const [namesz, descsz, type] = [0, 4, 8].map((o) => elf.readUInt32LE(note + o))
      if (type === 18 && elf.toString('latin1', note + 12, note + 12 + namesz) === 'Xen\0') return true // XEN_ELFNOTE_PHYS32_ENTRY
      note += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    }
  }
  return false
}

/**
 * The kernel image QEMU boots: the vmlinux inside `kernel`'s xz-compressed bzImage, unpacked
 * once and cached, when it has a PVH entry (TCG then skips the slow in-guest decompression);
 * otherwise the bzImage itself.
 */
export function bootKernel(kernel) {
  const file = path.join(CACHE, `vmlinux-${kernel.version}`)
  if (fs.existsSync(file)) return file
  const image = fs.readFileSync(kernel.vmlinuz)
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) // xz, as Debian builds it
  for (let at = image.indexOf(magic); at >= 0; at = image.indexOf(magic, at + 1)) {
    const r = spawnSync('xz', ['-dc', '--single-stream'], { input: image.subarray(at), maxBuffer: 1 << 30 })
    if (r.status !== 0 || !hasPvhEntry(r.stdout)) continue
    fs.mkdirSync(CACHE, { recursive: true })
    const tmp = `${file}.${process.pid}`
    fs.writeFileSync(tmp, r.stdout)
    fs.renameSync(tmp, file)
    return file
  }
  log(`${kernel.vmlinuz} has no xz-packed vmlinux with a PVH entry: booting it compressed (slower)`)
  return kernel.vmlinuz
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

/** Parses a --mode value: { namespaces: ['fsdax', 'devdax'], eadr, virtio }. */
export function parseMode(mode) {
  const words = mode.split(',').filter(Boolean)
  const bad = words.filter((w) => ![...KINDS, 'eadr', 'virtio'].includes(w))
  if (bad.length || words.length === 0) {
    throw new Error(`bad --mode ${mode}: use fsdax, devdax, raw, eadr, virtio or a comma list`)
  }
  const namespaces = words.filter((w) => KINDS.includes(w))
  const eadr = words.includes('eadr')
  const virtio = words.includes('virtio')
  return { namespaces: namespaces.length || !eadr ? namespaces : ['fsdax', 'devdax'], eadr, virtio }
}

/** The guests still running and their job scripts: killed and removed when this process exits. */
const liveGuests = new Set()
const liveJobs = new Set()
process.on('exit', () => {
  for (const child of liveGuests) child.kill('SIGKILL')
  for (const dir of liveJobs) fs.rmSync(dir, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(128 + os.constants.signals[signal]))

/** The guest kernel's command line: the job, and no crypto self-tests (a second of TCG time). */
// daxroot: the checkout, which init binds back if the guest's own /tmp, /run or /mnt hides it.
const append = (job) =>
  `console=ttyS0 rdinit=/init loglevel=4 panic=-1 cryptomgr.notests daxjob=${job} daxroot=${ROOT}`

/** Everything a boot needs from the host, prepared once per process. */
let prepared
function prepare() {
  if (prepared) return prepared
  ensurePackages()
  const kernel = guestKernel()
  prepared = { kernel, image: bootKernel(kernel), initrd: initramfs(kernel) }
  return prepared
}

/**
 * Starts QEMU: `files` are the NVDIMM images (one namespace each), `virtioImage` the
 * virtio-pmem image or undefined. Returns the child process.
 */
function qemu({ files, eadr, virtioImage, job, memory, smp }) {
  const { image, initrd } = prepare()
  const devices = files.length + (virtioImage ? 1 : 0)
  const machine = `pc,nvdimm=on${eadr ? ',nvdimm-persistence=cpu' : ''}`
  const args = [
    ...['-machine', machine, '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', String(smp)],
    ...['-m', `${memory}M,slots=${devices + 1},maxmem=${memory + devices * 1024}M`],
    ...files.flatMap((f, i) => [
      '-object',
      `memory-backend-file,id=mem${i},share=on,mem-path=${f},size=${NVDIMM_SIZE},align=2M`,
      '-device',
      `nvdimm,memdev=mem${i},id=nv${i}`,
    ]),
    ...(virtioImage
      ? [
          '-object',
          `memory-backend-file,id=vmem0,share=on,mem-path=${virtioImage},size=${VIRTIO_PMEM_SIZE}`,
          '-device',
          'virtio-pmem-pci,memdev=vmem0,id=vpmem0',
        ]
      : []),
    ...(fs.existsSync(QBOOT) ? ['-bios', QBOOT] : []),
    ...['-kernel', image, '-initrd', initrd, '-append', append(job)],
    ...['-virtfs', 'local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap'],
    ...['-nodefaults', '-display', 'none', '-no-reboot'],
    ...['-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console'],
  ]
  return spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Writes a job script into a new directory under SCRATCH/jobs; returns { dir, job }. */
function writeJob(lines) {
  const dir = path.join(SCRATCH, 'jobs', randomBytes(6).toString('hex'))
  fs.mkdirSync(dir, { recursive: true })
  liveJobs.add(dir)
  const job = path.join(dir, 'job.sh')
  fs.writeFileSync(job, ['#!/bin/bash', '# Written by scripts/dax-guest/guest.mjs; runs in the guest.', ...lines, ''].join('\n'))
  return { dir, job }
}

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`

/**
 * Runs a guest to its end and collects its console: resolves to { status, killed, lines,
 * partial } (`partial`: an unfinished last line). The QEMU process is `started.child` as soon
 * as it runs (for power cuts).
 */
function run({ files, eadr = false, virtioImage, lines: script, memory, smp, onLine, timeout, started }) {
  const { dir, job } = writeJob(script)
  const child = qemu({ files, eadr, virtioImage, job, memory, smp })
  liveGuests.add(child)
  if (started) started.child = child
  const lines = []
  let status = null
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => {
    log(`timeout after ${timeout} s: killing the guest`)
    child.kill('SIGKILL')
  }, timeout * 1000)
  // Whole lines only: a guest killed in the middle of a line (a power cut) leaves its start,
  // which must not count as what the line would have said.
  let partial = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (data) => {
    const parts = (partial + data).split('\n')
    partial = parts.pop()
    for (const raw of parts) {
      const line = raw.replace(/\r/g, '')
      const m = STATUS.exec(line)
      if (m) {
        status = Number(m[1])
        continue
      }
      lines.push(line)
      onLine?.(line)
    }
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      liveGuests.delete(child)
      fs.rmSync(dir, { recursive: true, force: true })
      liveJobs.delete(dir)
      if (!signal && code !== 0) return reject(new Error(`qemu exited with ${code}: ${stderr.trim()}`))
      resolve({ status, killed: signal !== null, lines, partial })
    })
  })
}

/** The provision step of a job: set up the namespaces (fresh: create them) and source the result. */
function provisionLines(namespaces, { fresh = false, virtio = false } = {}) {
  return [
    `export DAX_NAMESPACES=${namespaces.join(',')} DAX_FRESH=${fresh ? 1 : 0} DAX_VIRTIO=${virtio ? 1 : 0}`,
    `bash ${quote(path.join(HERE, 'provision.sh'))} || exit 90`,
    '. /run/dax-guest/env',
  ]
}

/**
 * The provisioned NVDIMM images, one per kind (fsdax.img, devdax.img, raw.img: a namespace in
 * that mode, and ext4 on fsdax and raw), made once in a guest and cached, keyed by the kernel,
 * the size and provision.sh. A guest's new NVDIMM is a sparse copy of one of them.
 */
export function templates() {
  templatesMade ??= makeTemplates()
  return templatesMade
}
let templatesMade

async function makeTemplates() {
  const { kernel } = prepare()
  const key = createHash('sha256')
    .update(kernel.version)
    .update(String(NVDIMM_SIZE))
    .update(fs.readFileSync(path.join(HERE, 'provision.sh')))
    .digest('hex')
    .slice(0, 12)
  const dir = path.join(CACHE, `templates-${key}`)
  if (fs.existsSync(dir)) return dir
  log(`provisioning NVDIMM templates (${KINDS.join(', ')}) in ${path.relative(ROOT, dir)}`)
  const work = fs.mkdtempSync(path.join(CACHE, 'templates-new-'))
  try {
    const files = KINDS.map((k) => path.join(work, `${k}.img`))
    for (const f of files) {
      fs.writeFileSync(f, '')
      fs.truncateSync(f, NVDIMM_SIZE)
    }
    const script = [...provisionLines(KINDS, { fresh: true }), 'umount /mnt/pmem /mnt/pagecache']
    const { status, lines } = await run({ files, lines: script, memory: 1024, smp: 1, timeout: 600 })
    if (status !== 0) throw new Error(`provisioning the templates failed (status ${status}):\n${lines.join('\n')}`)
    fs.renameSync(work, dir)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  return dir
}

/** The images of a guest with these namespaces in `dir`: copies of the templates if new. */
async function images(dir, namespaces) {
  fs.mkdirSync(dir, { recursive: true })
  const files = namespaces.map((_, i) => path.join(dir, `nvdimm${i}.img`))
  const fresh = files.map((f) => !fs.existsSync(f))
  if (new Set(fresh).size > 1) throw new Error(`${dir}: some NVDIMM images exist and some do not`)
  if (fresh[0]) {
    const from = await templates()
    for (const [i, f] of files.entries()) {
      execFileSync('cp', ['--sparse=always', path.join(from, `${namespaces[i]}.img`), f])
    }
  }
  return files
}

/**
 * Boots a guest and runs `command` (an array: program and arguments, run with bash's exec; or a
 * string: a bash script) in `cwd` with `env` added.
 *
 * Returns { started, done } at once: `started.child` is the QEMU process once it runs (kill it
 * with SIGKILL for a power cut), `done` resolves to { status, killed, lines } when QEMU exits:
 * the job's exit status (null if it did not report one), whether QEMU died of a signal, and
 * the console lines (and `partial`, an unfinished last line). Every console line also goes to
 * `onLine` as it arrives.
 */
export function boot({
  mode = 'fsdax',
  imageDir,
  command,
  cwd = ROOT,
  env = {},
  onLine,
  timeout = 1200,
  memory = 2048,
  smp = 2,
}) {
  const { namespaces, eadr, virtio } = parseMode(mode)
  const started = {}
  const done = (async () => {
    prepare()
    fs.mkdirSync(SCRATCH, { recursive: true })
    const dir = imageDir ?? fs.mkdtempSync(path.join(SCRATCH, 'images-'))
    try {
      const files = await images(dir, namespaces)
      let virtioImage
      if (virtio) {
        virtioImage = path.join(dir, 'virtio.img')
        fs.writeFileSync(virtioImage, '') // new for every boot: provision.sh makes it a device DAX
        fs.truncateSync(virtioImage, VIRTIO_PMEM_SIZE)
      }
      const script = [
        ...provisionLines(namespaces, { virtio }),
        ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
        `cd ${quote(cwd)} || exit 91`,
        Array.isArray(command) ? `exec ${command.map(quote).join(' ')}` : command,
      ]
      return await run({ files, eadr, virtioImage, lines: script, memory, smp, onLine, timeout, started })
    } finally {
      if (!imageDir) fs.rmSync(dir, { recursive: true, force: true })
    }
  })()
  return { started, done }
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
