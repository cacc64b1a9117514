// A typed tour of every export of pmem2. `npm run typecheck` checks it with `tsc --strict` (the
// `@ts-expect-error` lines prove that the declarations refuse misuse), and
// __test__/readme.spec.ts runs it: `node --import @oxc-node/core/register examples/usage.ts`.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import util from 'node:util'

import pmem2, {
  Config,
  errorCodes,
  Granularity,
  map,
  mapAsync,
  mapFile,
  mapFileAsync,
  type MapFileOptions,
  mapNew,
  Mapping,
  type MemFlag,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_WB,
  MEM_WC,
  platformInfo,
  type PlatformInfo,
  Pmem2Error,
  type Pmem2ErrorCode,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Sharing,
  Source,
} from 'pmem2'

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`usage.ts: ${what}`)
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmem2-usage-'))
const file = path.join(dir, 'usage.bin')

// platformInfo(): what this process chose and what the platform reports.
const info: PlatformInfo = platformInfo()
const instruction: string = info.flushInstruction
const isa: string = info.copyIsa
const eadr: boolean = info.eadr
const threshold: number = info.movntThreshold
const movdir64b: boolean = info.movdir64b
const sysfs: string = info.sysfsRoot
check(info.pageSize > 0 && instruction.length > 0 && isa.length > 0, 'platformInfo')
void [eadr, threshold, movdir64b, sysfs]

// mapFile: the short way.
const options: MapFileOptions = { size: 1 << 20, create: true, granularity: Granularity.Page, sharing: Sharing.Shared }
const mapping: Mapping = mapFile(file, options)
const address: bigint = mapping.address
const size: number = mapping.size
const granularity: Granularity = mapping.storeGranularity
const mapSync: boolean = mapping.mapSync
const sharing: Sharing = mapping.sharing
const protection: number = mapping.protection
const method: 'clwb' | 'clflushopt' | 'clflush' | 'dc cvap' | 'dc cvac' | 'msync' | 'none' = mapping.flushMethod
check(size === 1 << 20 && address > 0n && protection === (PROT_READ | PROT_WRITE) >>> 0, 'mapFile')
void [granularity, mapSync, sharing, method]

// Zero-copy Buffers, windows, and the copy-based calls.
const buffer: Buffer = mapping.buffer
buffer.write('hello', 0)
mapping.persist(0, 5)
mapping.flush(0n, 5n)
mapping.drain()
// Without a length: from the offset (0 when omitted) to the end of the mapping.
mapping.persist()
mapping.persist(4096)
mapping.flush()
mapping.drain()
const window: Buffer = mapping.view(4096, 4096)
window.write('window', 0)
mapping.persistRanges([
  [0, 5],
  [4096n, 6n],
])
mapping.write(8192, Buffer.from('write'))
mapping.write(8192, new Uint8Array([1, 2, 3]))
const copy: Buffer = mapping.read(4096, 6)
check(copy.toString() === 'window', 'view')
mapping.memcpy(12288, Buffer.from('memcpy'), MEM_NONTEMPORAL | MEM_NODRAIN)
mapping.memmove(12290, mapping.view(12288, 6))
mapping.memset(16384, 0xab, 64, MEM_TEMPORAL)
mapping.memcpy(20480, Buffer.alloc(256), MEM_NOFLUSH)
mapping.memcpy(20480, Buffer.alloc(256), MEM_WB)
mapping.memcpy(20480, Buffer.alloc(256), MEM_WC)
mapping.deepFlush(0, 4096)

// Errors: Pmem2Error with a stable code and libpmem2's number.
try {
  mapping.persist(0, 2 << 20)
} catch (e) {
  check(e instanceof RangeError, 'out-of-range persist is a RangeError')
}
try {
  mapFile(path.join(dir, 'missing'))
} catch (e) {
  if (e instanceof Pmem2Error) {
    const code: string = e.code
    const errno: number = e.errno
    check(code === 'ENOENT' && errno === -2, 'Pmem2Error')
  }
}
const codeNumber: -100006 = errorCodes.PMEM2_E_MAP_RANGE
check(codeNumber === -100006, 'errorCodes')

// unmap(), delete(), and Symbol.dispose (`using` where the runtime has it).
mapping.unmap()
check(buffer.length === 0 && window.length === 0, 'detached')
mapping.delete()
const disposable: Disposable = mapFile(file)
disposable[Symbol.dispose]()

// The modern form: Config + Source + mapNew.
const fd = fs.openSync(file, 'r+')
const source: Source = Source.fromFd(fd)
const config = new Config()
config.setRequiredStoreGranularity(Granularity.Page)
config.setOffset(0)
config.setLength(4096n)
config.setSharing(Sharing.Private)
config.setProtection(PROT_READ | PROT_WRITE)
const privateMapping = mapNew(config, source)
check(privateMapping.size === 4096 && source.alignment === info.pageSize && source.size === 1 << 20, 'mapNew')
privateMapping.unmap()

// The seed form: setFd + map.
const seed = new Config()
seed.setFd(fd)
const fileSize: number = seed.getFileSize()
const seeded = map(seed)
check(seeded.size === fileSize, 'map')
seeded.unmap()

// Anonymous memory, and the async forms (libuv thread pool).
const anon = mapNew(config, Source.fromAnon(1 << 16))
anon.unmap()
const asyncMapping: Mapping = await mapAsync(config, source)
fs.closeSync(fd) // after the promise settled
await asyncMapping.persistAsync(0, 4096)
await asyncMapping.persistAsync()
asyncMapping.unmap()
// A window of the file: offset and length as Config.setOffset/setLength take them.
const windowed = mapFile(file, { offset: 4096, length: 8192n })
check(windowed.size === 8192 && windowed.read(0, 6).toString() === 'window', 'mapFile window')
windowed.unmap()
const readOnly = await mapFileAsync(file, { readOnly: true })
check(readOnly.read(0, 5).toString() === 'hello', 'mapFileAsync')
readOnly.unmap()
check([PROT_EXEC, PROT_NONE].every((n) => typeof n === 'number'), 'PROT_*')

// The default export is the whole binding.
check(pmem2.mapFile === mapFile && pmem2.Mapping === Mapping, 'default')

// What a Node user checks first: the state, the errors, util.inspect, disposal.
const inspected = mapFile(file)
check(!inspected.unmapped && util.inspect(inspected).includes("protection: 'PROT_READ | PROT_WRITE'"), 'inspect')
await inspected.persistAsync()
inspected.persistAsync(0, 4096).catch(() => {}) // awaited by the disposal below
await inspected[Symbol.asyncDispose]()
check(inspected.unmapped, 'asyncDispose')
try {
  mapFile(path.join(dir, 'missing'))
} catch (e) {
  if (e instanceof Pmem2Error && e.code === 'ENOENT') {
    const where: string | undefined = e.path
    const syscall: string | undefined = e.syscall
    check(where === path.join(dir, 'missing') && syscall === 'open', 'path and syscall')
    check(e.message === `ENOENT: no such file or directory, open '${where}'`, 'fs-like message')
  }
}
const code: Pmem2ErrorCode = 'PMEM2_E_MAP_RANGE'
// Flags combine with |; libpmem2's protection values too.
const flags: MemFlag = MEM_NODRAIN
check(flags === 1 && code.length > 0, 'typed constants')
const typed = new Config()
typed.setProtection(PROT_READ)
typed.setProtection(PROT_READ | PROT_WRITE)

// What the declarations refuse (checked by tsc, never run).
function refused(): void {
  // @ts-expect-error the path is a string
  mapFile(3)
  // @ts-expect-error unknown option (also a TypeError at run time: "Unknown option 'sise'")
  mapFile(file, { sise: 1 })
  // @ts-expect-error offset is a number or a bigint
  mapFile(file, { offset: '4096' })
  // @ts-expect-error granularity is a Granularity, not a string
  mapFile(file, { granularity: 'PAGE' })
  // @ts-expect-error readOnly is a boolean
  mapFile(file, { readOnly: 1 })
  // @ts-expect-error write takes bytes, not a string
  mapping.write(0, 'text')
  // @ts-expect-error read-only getter
  mapping.size = 4
  // @ts-expect-error flushMethod is a closed union
  const wrong: 'msync' | 'none' = mapping.flushMethod
  // @ts-expect-error the code is a string, errno a number
  const n: string = new Pmem2Error().errno
  // @ts-expect-error mapAsync returns a promise
  mapAsync(config, source).size
  // @ts-expect-error a PROT_* value is not a copy flag
  mapping.memcpy(0, Buffer.alloc(1), PROT_READ)
  // @ts-expect-error nor a memset flag
  mapping.memset(0, 0, 1, PROT_WRITE)
  // @ts-expect-error a MEM_* flag is not a protection
  config.setProtection(MEM_NODRAIN)
  // @ts-expect-error the kernel's PROT_WRITE (2): pmem2 takes libpmem2's values (a RangeError at run time)
  config.setProtection(2)
  // @ts-expect-error the code is a closed union: a misspelt one does not compile
  const typo: Pmem2Error['code'] = 'PMEM2_E_MAP_RANG'
  // @ts-expect-error the loader's marker is not API
  void pmem2.__napiBindingTarget
  void [wrong, n, typo]
}
void refused

fs.rmSync(dir, { recursive: true, force: true })
console.log('usage.ts: every export works')
