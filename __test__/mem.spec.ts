// The data path from JavaScript: results compared with a shadow Buffer and with the file.
// On the real-DAX tier (PMEM2_TEST_REAL_DAX) CACHE_LINE is a real DAX file, not forced.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

import {
  Config,
  Granularity,
  mapFile,
  mapNew,
  Mapping,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_WB,
  MEM_WC,
  Pmem2Error,
  Source,
} from '../index.mjs'
import { granularityEnv, MiB, pageCacheDir, prerequisite, runs, tempDir } from './helpers.js'

const dir = tempDir()
const pageDir = pageCacheDir()
const FLAGS = [
  0,
  MEM_NODRAIN,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_NONTEMPORAL | MEM_TEMPORAL,
  MEM_NONTEMPORAL | MEM_NODRAIN,
  MEM_WC,
  MEM_WB,
  MEM_NOFLUSH,
  MEM_NODRAIN | MEM_NONTEMPORAL | MEM_TEMPORAL | MEM_WC | MEM_WB | MEM_NOFLUSH,
]
const SIZES = [1, 7, 64, 255, 256, 257, 4096, 65536]

/** A mapping with the requested effective granularity: PAGE for real, CACHE_LINE forced as libpmem2 allows (or real DAX). */
function mapWith(granularity: 'PAGE' | 'CACHE_LINE', name: string): { mapping: Mapping; file: string } {
  const file = `${granularity === 'PAGE' ? pageDir : dir}/${name}`
  if (granularity === 'CACHE_LINE') Object.assign(process.env, granularityEnv('CACHE_LINE'))
  try {
    const mapping = mapFile(file, { size: 256 * 1024, create: true })
    return { mapping, file }
  } finally {
    delete process.env.PMEM2_FORCE_GRANULARITY
  }
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

for (const granularity of ['PAGE', 'CACHE_LINE'] as const) {
  test(`memcpy/memset for every flag and size match a shadow buffer and the file (${granularity})`, (t) => {
    const { mapping, file } = mapWith(granularity, `copy-${granularity}`)
    t.is(mapping.storeGranularity, granularity === 'PAGE' ? Granularity.Page : Granularity.CacheLine)
    const shadow = Buffer.alloc(mapping.size)
    let seed = 1
    let offset = 0
    for (const flags of FLAGS) {
      for (const size of SIZES) {
        for (const misalign of [0, 1, 13, 63]) {
          const at = (offset + misalign) % (mapping.size - size)
          const src = pattern(size, seed++)
          mapping.memcpy(at, src, flags)
          src.copy(shadow, at)
          const fillAt = (at + size + 5) % (mapping.size - size)
          mapping.memset(fillAt, seed & 0xff, size, flags)
          shadow.fill(seed & 0xff, fillAt, fillAt + size)
          offset += 4099
        }
      }
      mapping.drain()
    }
    t.true(mapping.buffer.equals(shadow), 'mapping equals the shadow buffer')
    mapping.persist(0, mapping.size)
    t.true(fs.readFileSync(file).equals(shadow), 'file equals the shadow buffer')
    mapping.unmap()
  })
}

test('memmove handles overlap in both directions, like Buffer.copyWithin', (t) => {
  const { mapping } = mapWith('PAGE', 'move')
  const shadow = pattern(mapping.size, 7)
  mapping.buffer.set(shadow)
  for (const [dest, src, len] of [
    [20, 0, 4096],
    [0, 20, 4096],
    [33, 0, 2048],
    [2, 0, 8],
    [63, 64, 4],
  ]) {
    for (const flags of [0, MEM_NONTEMPORAL, MEM_TEMPORAL]) {
      mapping.memmove(dest, mapping.buffer.subarray(src, src + len), flags)
      shadow.copyWithin(dest, src, src + len)
    }
  }
  t.true(mapping.buffer.equals(shadow))
  mapping.unmap()
})

// The kernel's view of what persistence cost: msync for PAGE, no system call for CACHE_LINE.
// Each msync as strace saw its arguments: [start - mapping address, length, flags].
function msyncCalls(force: 'CACHE_LINE' | undefined, script: string): [number, number, string][] {
  const file = `${force ? dir : pageDir}/strace-${force ?? 'page'}`
  fs.writeFileSync(file, Buffer.alloc(1 << 20))
  const index = fileURLToPath(new URL('../index.js', import.meta.url))
  const code = `const p = require(${JSON.stringify(index)}); const m = p.mapFile(${JSON.stringify(file)});
    process.stderr.write('<<<' + m.address.toString(16) + '\\n');
    (async () => { ${script}; process.stderr.write('>>>\\n') })()`
  // -X raw: flags as a number (MS_SYNC is 4).
  const out = spawnSync('strace', ['-f', '--seccomp-bpf', '-X', 'raw', '-e', 'trace=msync', process.execPath, '-e', code], {
    env: { ...process.env, ...(force ? granularityEnv(force) : {}) },
    encoding: 'utf8',
  })
  if (out.status !== 0) throw new Error(out.stderr)
  const [address, between] = out.stderr.split('<<<')[1].split('>>>')[0].split(/\n(.*)/s)
  const base = BigInt('0x' + address)
  return [...between.matchAll(/msync\((0x[0-9a-f]+), (\d+), (\w+)\)/g)].map((m) => [
    Number(BigInt(m[1]) - base),
    Number(m[2]),
    m[3],
  ])
}

const withStrace = prerequisite('the strace tests', runs('strace', '-V'), 'apt-get install strace') ? test : test.skip
withStrace('write and persist on PAGE call msync on the pages of the range (MS_SYNC); on CACHE_LINE they make no system call', (t) => {
  // The page-aligned start, the length up to the end of the range, as libpmem2 passes them.
  t.deepEqual(msyncCalls(undefined, "m.write(100, Buffer.from('x'))"), [[0, 101, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.persist(100, 5000)'), [[0, 5100, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.persist(3 * 4096 + 17, 1)'), [[3 * 4096, 18, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.persistRanges([[0, 1], [8192, 1]])'), [
    [0, 1, '0x4'],
    [8192, 1, '0x4'],
  ])
  t.deepEqual(msyncCalls(undefined, "m.memcpy(0, Buffer.alloc(64), p.MEM_NOFLUSH)"), [])
  t.deepEqual(msyncCalls('CACHE_LINE', "m.write(100, Buffer.from('x')); m.persist(0, 4096)"), [])
})

withStrace('persist(), flush() and persistAsync() without a length cover the mapping from the offset (0 when omitted) to its end', (t) => {
  const size = 1 << 20
  t.deepEqual(msyncCalls(undefined, 'm.persist()'), [[0, size, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.persist(3 * 4096 + 17)'), [[3 * 4096, size - 3 * 4096, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.persist(8192n, undefined)'), [[8192, size - 8192, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'm.flush(); m.drain()'), [[0, size, '0x4']])
  t.deepEqual(msyncCalls(undefined, `m.flush(${size - 1})`), [[size - 4096, 4096, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'await m.persistAsync()'), [[0, size, '0x4']])
  t.deepEqual(msyncCalls(undefined, 'await m.persistAsync(4096)'), [[4096, size - 4096, '0x4']])
  // An offset at the end is an empty range; past the end it is refused as any range is.
  t.deepEqual(msyncCalls(undefined, `m.persist(${size})`), [])
  const { mapping } = mapWith('PAGE', 'defaults')
  t.throws(() => mapping.persist(mapping.size + 1), { instanceOf: RangeError, message: /offset \d+ of length 0/ })
  t.throws(() => mapping.flush(mapping.size + 1), { instanceOf: RangeError })
  t.throws(() => mapping.persist(null as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  mapping.unmap()
})

test('persistRanges checks every range before flushing any', (t) => {
  const { mapping } = mapWith('PAGE', 'ranges')
  t.notThrows(() => mapping.persistRanges([[0, 64], [4096n, 4096n], [mapping.size - 1, 1]]))
  t.throws(() => mapping.persistRanges([[0, 64], [mapping.size, 1]]), { instanceOf: RangeError })
  t.throws(() => mapping.persistRanges([[0]] as never), { instanceOf: TypeError })
  t.throws(() => mapping.persistRanges('0,1' as never), { instanceOf: TypeError })
  mapping.unmap()
})

test('bad arguments are typed errors, never a crash', (t) => {
  const { mapping } = mapWith('PAGE', 'bad')
  t.throws(() => mapping.memcpy(mapping.size, Buffer.alloc(1)), { instanceOf: RangeError })
  t.throws(() => mapping.memcpy(0, Buffer.alloc(1), 64), { instanceOf: RangeError })
  t.throws(() => mapping.memcpy(0, 'text' as never), { instanceOf: TypeError })
  t.throws(() => mapping.memcpy(0, new Uint16Array(4) as never), { instanceOf: TypeError })
  t.throws(() => mapping.memset(0, 256, 1), { instanceOf: RangeError })
  t.throws(() => mapping.memset(mapping.size - 1, 0, 2), { instanceOf: RangeError })
  t.throws(() => mapping.deepFlush(mapping.size, 1), { instanceOf: Pmem2Error, code: 'PMEM2_E_DEEP_FLUSH_RANGE' })
  mapping.unmap()
  t.throws(() => mapping.memcpy(0, Buffer.alloc(1)), { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
  t.throws(() => mapping.persistRanges([]), { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
})

test('a read-only mapping refuses copies with PMEM2_E_NO_ACCESS', (t) => {
  const { file, mapping } = mapWith('PAGE', 'ro-copy')
  mapping.unmap()
  const ro = mapFile(file, { readOnly: true })
  t.throws(() => ro.memcpy(0, Buffer.alloc(4)), { code: 'PMEM2_E_NO_ACCESS' })
  t.throws(() => ro.memset(0, 1, 4), { code: 'PMEM2_E_NO_ACCESS' })
  ro.unmap()
})

test('deepFlush: PAGE files succeed, anonymous mappings are PMEM2_E_NOSUPP', (t) => {
  const { mapping } = mapWith('PAGE', 'deep')
  t.notThrows(() => mapping.deepFlush(0, mapping.size))
  mapping.unmap()
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  const anon = mapNew(config, Source.fromAnon(MiB))
  t.throws(() => anon.deepFlush(0, 64), { code: 'PMEM2_E_NOSUPP' })
  anon.unmap()
})
