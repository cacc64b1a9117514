// Runs in the guest only (tier.mjs): what the kernel and a second process say about pmem2's
// mappings on real fsdax, device DAX and eADR. The environment comes from provision.sh
// (DAX_FSDAX_DIR, DAX_DEVDAX, DAX_EADR, DAX_VIRTIO_*) and tier.mjs (DAX_DEVDAX_READ and
// DAX_DEEP_FLUSH: devdax-read.c and deep-flush.c, built).
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { Config, Granularity, mapFile, mapNew, platformInfo, Sharing, Source } from '../../index.mjs'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const { DAX_FSDAX_DIR: fsdax, DAX_DEVDAX: devdax, DAX_DEVDAX_READ: devdaxRead } = process.env
for (const [name, value] of Object.entries({ DAX_FSDAX_DIR: fsdax, DAX_DEVDAX: devdax, DAX_DEVDAX_READ: devdaxRead })) {
  if (!value) throw new Error(`${name} is not set: run this through scripts/dax-guest/tier.mjs`)
}
const eadr = process.env.DAX_EADR === '1'
const REAL = eadr ? Granularity.Byte : Granularity.CacheLine
const daxName = path.basename(devdax)
const sysfsNumber = (file) => Number(fs.readFileSync(file, 'utf8').trim())
const devSize = sysfsNumber(`/sys/bus/dax/devices/${daxName}/size`)
const devAlign = sysfsNumber(`/sys/bus/dax/devices/${daxName}/align`)
const region = Number(/^dax(\d+)\./.exec(daxName)[1])

/** The VmFlags of the /proc/self/smaps entry that starts at `address`. */
function vmFlags(address) {
  const start = address.toString(16)
  const entries = fs.readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)
  const entry = entries.find((e) => e.startsWith(`${start}-`))
  assert.ok(entry, `no smaps entry at ${start}`)
  return /^VmFlags: (.*)$/m.exec(entry)[1].trim().split(' ')
}

function mapDevdax({ offset = 0, length = devAlign, sharing = Sharing.Shared } = {}) {
  const fd = fs.openSync(devdax, 'r+')
  try {
    const config = new Config()
    config.setRequiredStoreGranularity(Granularity.Page)
    config.setOffset(offset)
    config.setLength(length)
    config.setSharing(sharing)
    return mapNew(config, Source.fromFd(fd))
  } finally {
    fs.closeSync(fd)
  }
}

test('eADR as the platform reports it: every region cpu_cache, or not', () => {
  const domains = fs
    .readdirSync('/sys/bus/nd/devices')
    .filter((d) => d.startsWith('region'))
    .map((r) => {
      try {
        return fs.readFileSync(`/sys/bus/nd/devices/${r}/persistence_domain`, 'utf8').trim()
      } catch {
        return '' // QEMU without nvdimm-persistence reports no domain
      }
    })
  assert.ok(domains.length >= 2)
  assert.equal(domains.every((d) => d === 'cpu_cache'), eadr)
  assert.equal(platformInfo().eadr, eadr)
})

test('fsdax: a shared file mapping gets MAP_SYNC and the real granularity; the kernel marks it sync (VmFlags sf)', () => {
  const file = path.join(fsdax, 'smaps.bin')
  const m = mapFile(file, { size: 4 << 20, create: true })
  try {
    assert.equal(m.mapSync, true)
    assert.equal(m.storeGranularity, REAL)
    assert.ok(vmFlags(m.address).includes('sf'), `VmFlags ${vmFlags(m.address)}`)
    m.write(12345, Buffer.from('through MAP_SYNC'))
    const other = execFileSync('dd', [`if=${file}`, 'bs=1', 'skip=12345', 'count=16', 'status=none'])
    assert.equal(other.toString(), 'through MAP_SYNC')
  } finally {
    m.unmap()
  }
})

test('the page cache next to it: PAGE, no MAP_SYNC, no sf (the smaps check can fail)', () => {
  const file = path.join(fs.mkdtempSync('/tmp/dax-test-'), 'page.bin')
  const m = mapFile(file, { size: 1 << 20, create: true })
  try {
    assert.equal(m.mapSync, false)
    assert.equal(m.storeGranularity, Granularity.Page)
    assert.ok(!vmFlags(m.address).includes('sf'))
  } finally {
    m.unmap()
  }
})

test('device DAX: size and alignment are the real sysfs values', () => {
  const fd = fs.openSync(devdax, 'r+')
  try {
    const source = Source.fromFd(fd)
    assert.equal(source.fileType, 'devdax')
    assert.equal(source.size, devSize)
    assert.equal(source.alignment, devAlign)
  } finally {
    fs.closeSync(fd)
  }
  assert.equal(devAlign, 2 << 20)
  assert.equal(devSize % devAlign, 0)
})

test('device DAX: whole device, aligned offsets and lengths map; unaligned ones and private are refused', () => {
  const whole = mapDevdax({ length: 0 })
  assert.equal(whole.size, devSize)
  assert.equal(whole.storeGranularity, REAL)
  assert.equal(whole.address % BigInt(devAlign), 0n)
  whole.unmap()
  const tailEnd = mapDevdax({ offset: devSize - devAlign, length: devAlign })
  assert.equal(tailEnd.size, devAlign)
  tailEnd.unmap()
  assert.throws(() => mapDevdax({ offset: 4096 }), { code: 'PMEM2_E_OFFSET_UNALIGNED' })
  assert.throws(() => mapDevdax({ length: 4096 }), { code: 'PMEM2_E_LENGTH_UNALIGNED' })
  assert.throws(() => mapDevdax({ offset: devSize, length: devAlign }), { code: 'PMEM2_E_MAP_RANGE' })
  assert.throws(() => mapDevdax({ sharing: Sharing.Private }), { code: 'PMEM2_E_SRC_DEVDAX_PRIVATE' })
})

test('device DAX: what write() stored at an offset is what a second process maps there', () => {
  const offset = 3 * devAlign
  const m = mapDevdax({ offset, length: 2 * devAlign })
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff))
  try {
    m.write(devAlign + 1000, data)
    m.memcpy(devAlign + 5000, data, 0)
  } finally {
    m.unmap()
  }
  const read = (at) =>
    execFileSync(devdaxRead, [devdax, String(devAlign), String(offset + devAlign), String(at + data.length)], {
      encoding: 'utf8',
    }).trim()
  const hex = read(5000)
  assert.equal(hex.slice(2000, 2000 + 600), data.toString('hex'))
  assert.equal(hex.slice(10000, 10000 + 600), data.toString('hex'))
})

/** System calls a child makes in its deep flush, under strace (getppid calls mark the span). */
function traceDeepFlush(target, extra) {
  const index = path.join(ROOT, 'index.js')
  const code = `const p = require(${JSON.stringify(index)}); ${extra};
    process.ppid; m.deepFlush(0, 4096); process.ppid; m.unmap()`
  const log = path.join(fs.mkdtempSync('/tmp/dax-strace-'), 'trace')
  // --seccomp-bpf: only the traced calls stop the child (a full trace of node's start takes
  // tens of seconds under TCG).
  const trace = ['-f', '--seccomp-bpf', '-o', log, '-e', 'trace=openat,read,write,msync,getppid', '-e', 'signal=none']
  const out = spawnSync('strace', [...trace, process.execPath, '-e', code], { encoding: 'utf8' })
  assert.equal(out.status, 0, out.stderr)
  const text = fs.readFileSync(log, 'utf8')
  const spans = text.split(/^.*getppid\(.*$/m)
  assert.equal(spans.length, 3, text)
  return spans[1]
}

/** libpmem2's deep flush of a device DAX (deep-flush.c) under strace: { result, trace }. */
function libpmem2DeepFlush(dev, align) {
  const helper = process.env.DAX_DEEP_FLUSH
  assert.ok(helper, 'DAX_DEEP_FLUSH is not set: run this through scripts/dax-guest/tier.mjs')
  const log = path.join(fs.mkdtempSync('/tmp/dax-strace-'), 'trace')
  const trace = ['-f', '--seccomp-bpf', '-o', log, '-e', 'trace=openat,write', '-e', 'signal=none']
  const out = spawnSync('strace', [...trace, helper, dev, String(align)], { encoding: 'utf8' })
  return { result: out.stdout, trace: fs.readFileSync(log, 'utf8') }
}

const deepFlushWrites = (trace) => trace.split('\n').filter((l) => /write\(\d+, "1", 1\)/.test(l))

test('deepFlush on device DAX reads the region deep_flush, which QEMU makes a read-only "0", and so does not write it, as libpmem2', () => {
  const flag = `/sys/bus/nd/devices/region${region}/deep_flush`
  const state = fs.readFileSync(flag, 'utf8')
  const trace = traceDeepFlush(
    devdax,
    `const c = new p.Config(); c.setRequiredStoreGranularity(p.Granularity.Page); c.setLength(${devAlign});
     const fd = require('fs').openSync(${JSON.stringify(devdax)}, 'r+'); const m = p.mapNew(c, p.Source.fromFd(fd))`,
  )
  assert.match(trace, new RegExp(`openat\\(.*"${flag}", O_RDONLY`))
  // QEMU's NFIT describes no flush hint addresses: the kernel reports "0" (no flush needed) and
  // makes the file read-only; a region with hints reads "1", is writable, and gets one write.
  assert.equal(state, '0\n')
  assert.equal(fs.statSync(flag).mode & 0o777, 0o444)
  assert.deepEqual(deepFlushWrites(trace), [], trace)
  const libpmem2 = libpmem2DeepFlush(devdax, devAlign)
  assert.equal(libpmem2.result, 'map=0 deep_flush=0\n')
  assert.match(libpmem2.trace, new RegExp(`openat\\(.*"${flag}", O_RDONLY`))
  assert.deepEqual(deepFlushWrites(libpmem2.trace), [], libpmem2.trace)
})

test('virtio-pmem, the one QEMU device with a flush of its own, gives its region no deep_flush: deepFlush on its device DAX succeeds without a write, as in libpmem2', {
  skip: eadr && 'the eADR guest has no virtio-pmem device: its region has no persistence domain, so no eADR',
}, () => {
  // This kernel (6.1) shows deep_flush only for a region whose flush capability it knows, and
  // decides that from the region's NVDIMM mappings; a virtio-pmem region has none. So no
  // region of these guests takes a deep_flush write, and the write path is tested on the fake
  // sysfs tree only (crates/pmem2/src/sysfs.rs).
  const { DAX_VIRTIO_REGION: virtioRegion, DAX_VIRTIO_DEVDAX: virtioDevdax } = process.env
  assert.ok(virtioRegion && virtioDevdax, 'DAX_VIRTIO_REGION / DAX_VIRTIO_DEVDAX are not set: no virtio-pmem device')
  const dir = `/sys/bus/nd/devices/${virtioRegion}`
  const bus = path.dirname(fs.realpathSync(dir))
  assert.equal(fs.readFileSync(path.join(bus, 'provider'), 'utf8'), 'virtio-pmem\n')
  assert.equal(fs.readFileSync(path.join(dir, 'mappings'), 'utf8'), '0\n')
  const flag = path.join(dir, 'deep_flush')
  assert.ok(!fs.existsSync(flag), `${flag} exists`)
  assert.equal(`region${/^dax(\d+)\./.exec(path.basename(virtioDevdax))[1]}`, virtioRegion)

  const align = sysfsNumber(`/sys/bus/dax/devices/${path.basename(virtioDevdax)}/align`)
  const trace = traceDeepFlush(
    virtioDevdax,
    `const c = new p.Config(); c.setRequiredStoreGranularity(p.Granularity.Page); c.setLength(${align});
     const fd = require('fs').openSync(${JSON.stringify(virtioDevdax)}, 'r+'); const m = p.mapNew(c, p.Source.fromFd(fd))`,
  )
  assert.match(trace, new RegExp(`openat\\(.*"${flag}", O_RDONLY.*ENOENT`))
  assert.deepEqual(deepFlushWrites(trace), [], trace)
  const libpmem2 = libpmem2DeepFlush(virtioDevdax, align)
  assert.equal(libpmem2.result, 'map=0 deep_flush=0\n')
  assert.match(libpmem2.trace, new RegExp(`openat\\(.*"${flag}", O_RDONLY.*ENOENT`))
  assert.deepEqual(deepFlushWrites(libpmem2.trace), [], libpmem2.trace)
})

test('deepFlush on an fsdax file is one msync', () => {
  const file = path.join(fsdax, 'deep.bin')
  fs.writeFileSync(file, Buffer.alloc(1 << 20))
  const trace = traceDeepFlush(file, `const m = p.mapFile(${JSON.stringify(file)})`)
  assert.equal(trace.split('\n').filter((l) => /msync\(/.test(l)).length, 1, trace)
})

function info(target) {
  const out = execFileSync(process.execPath, [path.join(ROOT, 'bin/pmem2.mjs'), 'info', target, '--json'], {
    encoding: 'utf8',
  })
  return JSON.parse(out)
}

test('pmem2 info on an fsdax file and on the device DAX', () => {
  const file = path.join(fsdax, 'info.bin')
  fs.writeFileSync(file, Buffer.alloc(1 << 20))
  const gran = eadr ? 'BYTE' : 'CACHE_LINE'
  const f = info(file)
  assert.equal(f.fileType, 'regular')
  assert.equal(f.mapSync, true)
  assert.equal(f.granularity, gran)
  assert.equal(f.eadr, eadr)
  assert.equal(f.filesystem.type, 'ext4')
  assert.equal(f.filesystem.dax, 'dax=always')
  const d = info(devdax)
  assert.equal(d.fileType, 'devdax')
  assert.equal(d.size, devSize)
  assert.equal(d.alignment, devAlign)
  assert.equal(d.granularity, gran)
  assert.equal(d.eadr, eadr)
})
