import test from 'ava'
import fs from 'node:fs'

import {
  Config,
  errorCodes,
  Granularity,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_WB,
  MEM_WC,
  Pmem2Error,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Sharing,
} from '../index.mjs'
import { prerequisite } from './helpers.js'

test('enums carry libpmem2 values', (t) => {
  t.deepEqual([Granularity.Byte, Granularity.CacheLine, Granularity.Page], [0, 1, 2])
  t.deepEqual([Sharing.Shared, Sharing.Private], [0, 1])
})

test('enums map values back to names, as TypeScript numeric enums do', (t) => {
  t.is(Granularity[Granularity.CacheLine], 'CacheLine')
  t.is(Sharing[Sharing.Private], 'Private')
})

test('protection and flag constants carry libpmem2 values', (t) => {
  t.deepEqual([PROT_EXEC, PROT_READ, PROT_WRITE, PROT_NONE], [2 ** 29, 2 ** 30, 2 ** 31, 0])
  t.deepEqual([MEM_NODRAIN, MEM_NONTEMPORAL, MEM_TEMPORAL, MEM_WC, MEM_WB, MEM_NOFLUSH], [1, 2, 4, 8, 16, 32])
})

// Independent truth: the header of the reference libpmem2 installed from Debian.
const BASE_H = '/usr/include/libpmem2/base.h'
const withHeader = prerequisite('the libpmem2 header check', fs.existsSync(BASE_H), 'apt-get install libpmem2-dev') ? test : test.skip
withHeader('errorCodes matches every PMEM2_E_* of the installed libpmem2 header', (t) => {
  const header = fs.readFileSync(BASE_H, 'utf8')
  const fromHeader: Record<string, number> = {}
  for (const m of header.matchAll(/#define\s+(PMEM2_E_\w+)\s+\((-\d+)\)/g)) {
    if (m[1] !== 'PMEM2_E_ERRNO') fromHeader[m[1]] = Number(m[2])
  }
  t.true(Object.keys(fromHeader).length >= 36)
  t.deepEqual({ ...errorCodes }, fromHeader)
})

test('Pmem2Error is an Error with code, errno and a message naming the value', (t) => {
  const err = t.throws(() => new Config().setOffset(2n ** 63n), { instanceOf: Pmem2Error })
  t.true(err instanceof Error)
  t.is(err.name, 'Pmem2Error')
  t.is(err.code, 'PMEM2_E_OFFSET_OUT_OF_RANGE')
  t.is(err.errno, errorCodes.PMEM2_E_OFFSET_OUT_OF_RANGE)
  t.regex(err.message, /9223372036854775808/)
  t.truthy(err.stack)
})
