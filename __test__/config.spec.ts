// libpmem2's pmem2_config cases, plus JavaScript's own argument rules.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'

import {
  Config,
  Granularity,
  type Mapping,
  mapNew,
  Pmem2Error,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Sharing,
  Source,
} from '../index.mjs'
import { kernelMappings, PAGE, tempDir } from './helpers.js'

const dir = tempDir()
const PAGES = 16

/** A file of 16 pages, page p filled with the byte p + 1. */
function pagedFile(name: string): string {
  const file = path.join(dir, name)
  const bytes = Buffer.alloc(PAGES * PAGE)
  for (let p = 0; p < PAGES; p++) bytes.fill(p + 1, p * PAGE, (p + 1) * PAGE)
  fs.writeFileSync(file, bytes)
  return file
}

/** The permissions and file offsets /proc/self/maps shows for the mapping. */
function kernelView(mapping: Mapping): { perms: string[]; offsets: number[] } {
  const lines = kernelMappings(mapping.address, mapping.size)
  return {
    perms: [...new Set(lines.map((l) => l.split(' ')[1]))],
    offsets: lines.map((l) => parseInt(l.split(' ')[2], 16)),
  }
}

test('a mapping made from the config shows each setting: size, the bytes at the offset, sharing and protection as the kernel has them', (t) => {
  t.true((PROT_READ | PROT_WRITE) < 0, 'PROT_READ | PROT_WRITE is negative in JavaScript')
  const file = pagedFile('settings')
  const cases: {
    granularity: Granularity
    offset: number | bigint
    length: number | bigint
    sharing?: Sharing
    protection?: number
    size: number
    perms: string
    effective: Granularity
  }[] = [
    // Defaults: shared, read-write; length 0 maps to the end.
    { granularity: Granularity.Page, offset: 0, length: 0, size: PAGES * PAGE, perms: 'rw-s', effective: Granularity.Page },
    { granularity: Granularity.Page, offset: PAGE, length: 2 * PAGE, size: 2 * PAGE, perms: 'rw-s', effective: Granularity.Page },
    // bigint offset and length; the last page.
    { granularity: Granularity.Page, offset: BigInt((PAGES - 1) * PAGE), length: BigInt(PAGE), size: PAGE, perms: 'rw-s', effective: Granularity.Page },
    // Private and read-only: BYTE (nothing to flush), the kernel's r--p.
    { granularity: Granularity.Byte, offset: 3 * PAGE, length: PAGE, sharing: Sharing.Private, protection: PROT_READ, size: PAGE, perms: 'r--p', effective: Granularity.Byte },
    // PROT_READ | PROT_WRITE, negative in JavaScript, is read-write.
    { granularity: Granularity.Page, offset: 5 * PAGE, length: 0, protection: PROT_READ | PROT_WRITE, size: (PAGES - 5) * PAGE, perms: 'rw-s', effective: Granularity.Page },
    { granularity: Granularity.Page, offset: 0, length: PAGE, protection: PROT_WRITE, size: PAGE, perms: '-w-s', effective: Granularity.Page },
    { granularity: Granularity.Page, offset: 0, length: PAGE, protection: PROT_NONE, size: PAGE, perms: '---s', effective: Granularity.Page },
  ]
  for (const c of cases) {
    const what = JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))
    const config = new Config()
    config.setRequiredStoreGranularity(c.granularity)
    config.setOffset(c.offset)
    config.setLength(c.length)
    if (c.sharing !== undefined) config.setSharing(c.sharing)
    if (c.protection !== undefined) config.setProtection(c.protection)
    const fd = fs.openSync(file, 'r+')
    const mapping = mapNew(config, Source.fromFd(fd))
    fs.closeSync(fd)
    t.is(mapping.size, c.size, what)
    t.is(mapping.storeGranularity, c.effective, what)
    t.is(mapping.sharing, c.sharing ?? Sharing.Shared, what)
    t.is(mapping.protection, (c.protection ?? PROT_READ | PROT_WRITE) >>> 0, what)
    const kernel = kernelView(mapping)
    t.deepEqual(kernel.perms, [c.perms], what)
    t.is(kernel.offsets[0], Number(c.offset), `${what}: the file offset the kernel mapped`)
    if (c.perms.startsWith('r')) {
      const first = Number(c.offset) / PAGE + 1
      t.is(mapping.read(0, 1)[0], first, `${what}: the first byte is the offset's`)
      t.is(mapping.read(c.size - 1, 1)[0], first + c.size / PAGE - 1, `${what}: the last byte`)
    }
    mapping.unmap()
  }
})

test('PROT_EXEC and every protection reach the kernel (anonymous sources, which no noexec mount affects)', (t) => {
  for (const [protection, perms] of [
    [PROT_READ | PROT_EXEC, 'r-xs'],
    [PROT_READ | PROT_WRITE | PROT_EXEC, 'rwxs'],
    [PROT_EXEC, '--xs'],
    [PROT_NONE, '---s'],
  ] as const) {
    const config = new Config()
    config.setRequiredStoreGranularity(Granularity.Page)
    config.setProtection(protection)
    const mapping = mapNew(config, Source.fromAnon(PAGE))
    t.is(mapping.protection, protection >>> 0)
    t.deepEqual(kernelView(mapping).perms, [perms], `protection ${protection}`)
    mapping.unmap()
  }
})

test("offsets and lengths up to the setters' limits are kept exactly (the map error quotes them)", (t) => {
  const file = pagedFile('limits')
  const fd = fs.openSync(file, 'r+')
  const source = Source.fromFd(fd)
  const cases: [number | bigint, number | bigint, string, RegExp][] = [
    [2n ** 63n - 4096n, 0, 'PMEM2_E_MAP_RANGE', /offset 9223372036854771712\b/], // (INT64_MAX / align) * align
    [0, 2n ** 64n - 1n, 'PMEM2_E_LENGTH_UNALIGNED', /length 18446744073709551615\b/],
    [0, 2n ** 64n - 4096n, 'PMEM2_E_MAP_RANGE', /length 18446744073709547520\b/],
    [PAGE, 2 ** 53 - PAGE, 'PMEM2_E_MAP_RANGE', /offset 4096 \+ length 9007199254736896\b/],
  ]
  for (const [offset, length, code, quoted] of cases) {
    const config = new Config()
    config.setRequiredStoreGranularity(Granularity.Page)
    config.setOffset(offset)
    config.setLength(length)
    const err = t.throws(() => mapNew(config, source), { code })
    t.regex(err!.message, quoted)
  }
  fs.closeSync(fd)
})

test('unknown granularity value is PMEM2_E_GRANULARITY_NOT_SUPPORTED', (t) => {
  const err = t.throws(() => new Config().setRequiredStoreGranularity(999 as Granularity), { instanceOf: Pmem2Error })
  t.is(err.code, 'PMEM2_E_GRANULARITY_NOT_SUPPORTED')
  t.regex(err.message, /999/)
})

test('offset above INT64_MAX is PMEM2_E_OFFSET_OUT_OF_RANGE', (t) => {
  t.throws(() => new Config().setOffset(2n ** 63n), { code: 'PMEM2_E_OFFSET_OUT_OF_RANGE' })
})

test('unknown sharing value is PMEM2_E_INVALID_SHARING_VALUE', (t) => {
  t.throws(() => new Config().setSharing(777 as Sharing), { code: 'PMEM2_E_INVALID_SHARING_VALUE' })
})

test("the kernel's PROT_WRITE (2) is PMEM2_E_INVALID_PROT_FLAG", (t) => {
  // @ts-expect-error the kernel's values do not compile either (ProtectionArg)
  const err = t.throws(() => new Config().setProtection(2), { code: 'PMEM2_E_INVALID_PROT_FLAG' })
  t.is((err as Pmem2Error).errno, -100031)
})

test('wrong argument types are TypeErrors', (t) => {
  const config = new Config()
  for (const call of [
    () => config.setOffset('0' as never),
    () => config.setLength(null as never),
    () => config.setRequiredStoreGranularity('PAGE' as never),
    () => config.setSharing({} as never),
    () => config.setProtection(undefined as never),
    () => config.setFd('3' as never),
  ]) {
    t.throws(call, { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' } as never)
  }
})

test('numbers that are not representable are RangeErrors', (t) => {
  const config = new Config()
  for (const value of [-1, 1.5, NaN, Infinity, 2 ** 53, -1n, 2n ** 64n]) {
    t.throws(() => config.setLength(value), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never, String(value))
  }
  t.throws(() => config.setFd(2 ** 31), { instanceOf: RangeError })
  t.throws(() => config.setProtection(2 ** 32), { instanceOf: RangeError })
})
