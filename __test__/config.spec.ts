// libpmem2's pmem2_config cases, plus JavaScript's own argument rules.
import test from 'ava'

import { Config, Granularity, Pmem2Error, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, Sharing } from '../index.mjs'

test('setters accept valid values', (t) => {
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Byte)
  config.setRequiredStoreGranularity(Granularity.Page)
  config.setOffset(4096)
  config.setOffset(2n ** 63n - 4096n) // (INT64_MAX / align) * align
  config.setLength(4096)
  config.setLength(2n ** 64n - 1n)
  config.setSharing(Sharing.Private)
  for (const prot of [PROT_READ, PROT_WRITE, PROT_EXEC, PROT_NONE, PROT_READ | PROT_WRITE | PROT_EXEC]) {
    config.setProtection(prot)
  }
  t.pass()
})

test('PROT_READ | PROT_WRITE is negative in JavaScript and still accepted', (t) => {
  t.true((PROT_READ | PROT_WRITE) < 0)
  t.notThrows(() => new Config().setProtection(PROT_READ | PROT_WRITE))
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
