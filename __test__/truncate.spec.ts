// A file truncated under a live mapping (by this process or another): pmem2's own calls throw
// a Pmem2Error with code PMEM2_E_IO_FAIL and the process lives; the part the file still
// covers keeps working. A direct store through mapping.buffer still dies of SIGBUS, which is
// the kernel's behaviour for plain memory access (README, "What JavaScript can and cannot do").
import test, { type ExecutionContext } from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

import {
  errorCodes,
  Granularity,
  mapFile,
  Mapping,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  Pmem2Error,
} from '../index.mjs'
import { PAGE, tempDir } from './helpers.js'

const dir = tempDir()
const fixture = fileURLToPath(new URL('./fixtures/truncate.mjs', import.meta.url))
const PAGES = 16
const KEEP = 4
const END = KEEP * PAGE
const BEYOND = END + PAGE + 8
const SIZES = [1, 64, 255, 256, 4096, 3 * PAGE + 7]
const FLAGS = [0, MEM_NODRAIN, MEM_NONTEMPORAL, MEM_TEMPORAL, MEM_NOFLUSH]

let files = 0
function truncatedMapping(how: 'here' | 'child'): { mapping: Mapping; file: string } {
  const file = `${dir}/truncate-${files++}`
  const mapping = mapFile(file, { size: PAGES * PAGE, create: true })
  if (how === 'here') {
    fs.truncateSync(file, END)
  } else {
    execFileSync(process.execPath, ['-e', `require('node:fs').truncateSync(${JSON.stringify(file)}, ${END})`])
  }
  return { mapping, file }
}

/** Asserts that `call` throws PMEM2_E_IO_FAIL for a SIGBUS at an offset in [lo, hi). */
function throwsIoFail(t: ExecutionContext, call: () => unknown, what: string, lo: number, hi: number) {
  const err = t.throws(call, { instanceOf: Pmem2Error }, what) as Pmem2Error & { code: string; errno: number }
  if (!err) return
  t.is(err.code, 'PMEM2_E_IO_FAIL', what)
  t.is(err.errno, errorCodes.PMEM2_E_IO_FAIL, what)
  t.regex(err.message, /SIGBUS \(BUS_ADRERR\) at offset \d+ of the mapping: .*truncated under the mapping/, what)
  const offset = Number(/at offset (\d+)/.exec(err.message)?.[1])
  t.true(offset >= lo && offset < hi, `${what}: fault at ${offset}, not in [${lo}, ${hi})`)
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

for (const how of ['here', 'child'] as const) {
  test(`truncated ${how === 'here' ? 'with fs.truncateSync' : 'by another process'}: every call on a lost page throws PMEM2_E_IO_FAIL (PAGE)`, (t) => {
    const { mapping, file } = truncatedMapping(how)
    t.is(mapping.storeGranularity, Granularity.Page)
    for (const size of SIZES) {
      const data = pattern(size, size)
      throwsIoFail(t, () => mapping.read(BEYOND, size), `read ${size}`, END, BEYOND + size)
      throwsIoFail(t, () => mapping.write(BEYOND, data), `write ${size}`, END, BEYOND + size)
      for (const flags of FLAGS) {
        throwsIoFail(t, () => mapping.memcpy(BEYOND, data, flags), `memcpy ${size} ${flags}`, END, BEYOND + size)
        throwsIoFail(t, () => mapping.memset(BEYOND, 9, size, flags), `memset ${size} ${flags}`, END, BEYOND + size)
      }
      throwsIoFail(t, () => mapping.persist(BEYOND, size), `persist ${size}`, END, BEYOND + size)
      throwsIoFail(t, () => mapping.flush(BEYOND, size), `flush ${size}`, END, BEYOND + size)
    }
    throwsIoFail(t, () => mapping.persistRanges([[0, 64], [BEYOND, 64]]), 'persistRanges', END, BEYOND + 64)
    // The source is a view of the lost part of this mapping (copied within the mapping).
    const lostView = mapping.buffer.subarray(BEYOND, BEYOND + 512)
    throwsIoFail(t, () => mapping.memcpy(0, lostView), 'memcpy from a lost view', END, BEYOND + 512)
    throwsIoFail(t, () => mapping.write(0, lostView), 'write from a lost view', END, BEYOND + 512)
    throwsIoFail(t, () => mapping.memmove(64, lostView), 'memmove from a lost view', END, BEYOND + 512)

    // The process lives and the part the file still covers keeps working.
    const data = pattern(END, 3)
    mapping.write(0, data)
    mapping.persist(0, END)
    t.deepEqual(mapping.read(0, END), data)
    t.deepEqual(fs.readFileSync(file), data)
    mapping.unmap()
  })
}

test('a copy whose source is a view of another, truncated mapping throws PMEM2_E_IO_FAIL', (t) => {
  const { mapping: lost } = truncatedMapping('here')
  const healthy = mapFile(`${dir}/healthy`, { size: PAGES * PAGE, create: true })
  const source = lost.buffer.subarray(BEYOND, BEYOND + 4096)
  for (const flags of FLAGS) {
    const err = t.throws(() => healthy.memcpy(0, source, flags), { instanceOf: Pmem2Error })
    t.is(err?.code, 'PMEM2_E_IO_FAIL')
    t.regex(err?.message ?? '', /outside this mapping/)
  }
  t.is(t.throws(() => healthy.write(0, source), { instanceOf: Pmem2Error })?.code, 'PMEM2_E_IO_FAIL')
  healthy.write(0, Buffer.from('fine'))
  t.is(healthy.read(0, 4).toString(), 'fine')
  healthy.unmap()
  lost.unmap()
})

test('500 faults in a row: each throws, and the mapping works between them', (t) => {
  const { mapping } = truncatedMapping('here')
  const calls = [
    (at: number) => mapping.write(at, Buffer.alloc(200, 1)),
    (at: number) => mapping.read(at, 200),
    (at: number) => mapping.memcpy(at, Buffer.alloc(300, 2), MEM_NONTEMPORAL),
    (at: number) => mapping.memset(at, 3, 300),
    (at: number) => mapping.persist(at, 200),
  ]
  let thrown = 0
  for (let round = 0; round < 500; round++) {
    const at = END + PAGE + ((round * 97) % (8 * PAGE))
    try {
      calls[round % calls.length](at)
    } catch (e) {
      if ((e as Pmem2Error & { code: string }).code === 'PMEM2_E_IO_FAIL') thrown++
    }
    const data = pattern(200, round)
    mapping.write(round % 1000, data)
    if (!mapping.read(round % 1000, 200).equals(data)) t.fail(`round ${round}: covered part corrupted`)
  }
  t.is(thrown, 500)
  mapping.unmap()
})

for (const granularity of ['PAGE', 'CACHE_LINE'] as const) {
  test(`in a fresh process (${granularity}): the first pmem2 call on a lost page throws PMEM2_E_IO_FAIL`, (t) => {
    const file = `${dir}/child-${granularity}`
    const r = spawnSync(process.execPath, [fixture, 'ops', file], {
      encoding: 'utf8',
      env: { ...process.env, PMEM2_FORCE_GRANULARITY: granularity },
    })
    t.is(r.signal, null, r.stderr)
    t.is(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { granularity: Granularity; codes: Record<string, string>; alive: string }
    t.is(out.granularity, granularity === 'PAGE' ? Granularity.Page : Granularity.CacheLine)
    for (const [op, code] of Object.entries(out.codes)) t.is(code, 'PMEM2_E_IO_FAIL', op)
    t.is(Object.keys(out.codes).length, 7)
    t.is(out.alive, 'alive')
  })
}

test('a direct store through mapping.buffer into a lost page still dies of SIGBUS (documented)', (t) => {
  // `ulimit -c 0`: the child is meant to die, without leaving a core file behind.
  const r = spawnSync('/bin/sh', ['-c', 'ulimit -c 0 && exec "$@"', 'sh', process.execPath, fixture, 'store', `${dir}/store`], {
    encoding: 'utf8',
  })
  t.is(r.stdout.split('\n')[0], 'recovered PMEM2_E_IO_FAIL')
  t.is(r.signal, 'SIGBUS', `status ${r.status}, stderr: ${r.stderr}`)
  t.false(r.stdout.includes('survived'))
})
