// What a mapping says about itself: flushMethod, mapSync, sharing, protection, cross-checked with
// the CPU flags in /proc/cpuinfo and with platformInfo() in child processes.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

import { Config, Granularity, mapFile, mapNew, platformInfo, PROT_READ, PROT_WRITE, Sharing, Source } from '../index.mjs'
import { makeFile, MiB, tempDir } from './helpers.js'

const dir = tempDir()
const index = fileURLToPath(new URL('../index.js', import.meta.url))
// The kernel's list of CPU features: "flags" on x86_64, "Features" on arm64.
const cpuFlags = new Set(
  (/^(?:flags|Features)\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/),
)

/** The cache-line flush a CPU with these flags should get, as libpmem2 chooses it. */
function expectedFlush(env: Record<string, string>): string {
  switch (process.arch) {
    case 'x64':
      if (cpuFlags.has('clwb') && env.PMEM_NO_CLWB !== '1') return 'clwb'
      if (cpuFlags.has('clflushopt') && env.PMEM_NO_CLFLUSHOPT !== '1') return 'clflushopt'
      return 'clflush'
    case 'arm64':
      // DC CVAP where the kernel reports DCPOP (HWCAP_DCPOP, "dcpop" in /proc/cpuinfo).
      return cpuFlags.has('dcpop') ? 'dc cvap' : 'dc cvac'
    default:
      return 'none'
  }
}

/** Maps `file` in a child process with `env` and reports what the mapping and platformInfo say. */
function inChild(file: string, env: Record<string, string>) {
  const script = `
    const p = require(${JSON.stringify(index)})
    const m = p.mapFile(${JSON.stringify(file)})
    const out = { granularity: m.storeGranularity, flushMethod: m.flushMethod, mapSync: m.mapSync, info: p.platformInfo() }
    m.buffer.write('forced', 0)
    m.persist(0, 6) // the chosen instruction really runs
    m.unmap()
    process.stdout.write(JSON.stringify(out))`
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^PMEM/.test(k)),
  ) as Record<string, string>
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...clean, ...env }, encoding: 'utf8' }))
}

test('the flush instruction follows the CPU features in /proc/cpuinfo (x64: CLFLUSH at least; arm64: DC CVAP with dcpop)', (t) => {
  t.true(cpuFlags.size > 1, 'no CPU feature list in /proc/cpuinfo')
  // CLFLUSH is part of SSE2, which every x86_64 CPU has; arm64 always has DC CVAC.
  if (process.arch === 'x64') t.true(cpuFlags.has('clflush'), [...cpuFlags].join(' '))
  t.is(platformInfo().flushInstruction, expectedFlush(process.env as Record<string, string>))
})

test('a page-cache file: PAGE, msync, no MAP_SYNC, shared, read-write', (t) => {
  const mapping = mapFile(makeFile(dir, 'page', MiB))
  t.is(mapping.storeGranularity, Granularity.Page)
  t.is(mapping.flushMethod, 'msync')
  t.false(mapping.mapSync)
  t.is(mapping.sharing, Sharing.Shared)
  t.is(mapping.protection, (PROT_READ | PROT_WRITE) >>> 0)
  mapping.unmap()
})

test('private and anonymous mappings: BYTE, flushMethod none', (t) => {
  const priv = mapFile(makeFile(dir, 'private', MiB), { sharing: Sharing.Private })
  t.is(priv.storeGranularity, Granularity.Byte)
  t.is(priv.flushMethod, 'none')
  t.is(priv.sharing, Sharing.Private)
  t.false(priv.mapSync)
  priv.unmap()
  const config = new Config()
  config.setRequiredStoreGranularity(Granularity.Page)
  const anon = mapNew(config, Source.fromAnon(MiB))
  t.is(anon.storeGranularity, Granularity.Byte)
  t.is(anon.flushMethod, 'none')
  anon.unmap()
})

test('forced CACHE_LINE: flushMethod is platformInfo().flushInstruction, following the CPU flags and PMEM_NO_*', (t) => {
  const file = makeFile(dir, 'cache-line', MiB)
  const cases: Record<string, string>[] = [
    { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE' },
    { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE', PMEM_NO_CLWB: '1' },
    { PMEM2_FORCE_GRANULARITY: 'CACHE_LINE', PMEM_NO_CLWB: '1', PMEM_NO_CLFLUSHOPT: '1' },
  ]
  for (const env of cases) {
    const out = inChild(file, env)
    const what = JSON.stringify(env)
    t.is(out.granularity, Granularity.CacheLine, what)
    t.false(out.mapSync, `forced, not granted by the kernel (${what})`)
    t.is(out.flushMethod, out.info.flushInstruction, what)
    t.is(out.flushMethod, expectedFlush(env), what)
  }
  if (cpuFlags.has('clflushopt')) t.is(inChild(file, cases[1]).flushMethod, 'clflushopt')
  t.is(fs.readFileSync(file).subarray(0, 6).toString(), 'forced')
})

test('forced BYTE on a shared file: flushMethod none; forced PAGE: msync', (t) => {
  const file = makeFile(dir, 'forced', MiB)
  t.like(inChild(file, { PMEM2_FORCE_GRANULARITY: 'BYTE' }), { granularity: Granularity.Byte, flushMethod: 'none' })
  t.like(inChild(file, { PMEM2_FORCE_GRANULARITY: 'PAGE' }), { granularity: Granularity.Page, flushMethod: 'msync' })
})

test('introspection getters throw PMEM2_E_MAPPING_NOT_FOUND after unmap', (t) => {
  const mapping = mapFile(makeFile(dir, 'gone', MiB))
  mapping.unmap()
  for (const get of [() => mapping.flushMethod, () => mapping.mapSync, () => mapping.sharing, () => mapping.protection]) {
    t.throws(get, { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
  }
})
