// What a Node user meets first (issue 9): errors that read like Node's, classes that behave like
// JavaScript classes, methods that say what they need, util.inspect, disposal, and the typed
// constants' run-time side.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import util from 'node:util'

import * as esm from '../index.mjs'
import {
  Config,
  errorCodes,
  Granularity,
  mapFile,
  mapFileAsync,
  mapNew,
  Mapping,
  MEM_NODRAIN,
  Pmem2Error,
  PROT_READ,
  PROT_WRITE,
  Sharing,
  Source,
} from '../index.mjs'
import { kernelMappings, makeFile, MiB, node24, PAGE, tempDir } from './helpers.js'

const dir = tempDir()
const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)

/** The error `fn` throws, for comparing it with what Node's fs throws for the same file. */
function thrown(fn: () => unknown): any {
  try {
    fn()
  } catch (e) {
    return e
  }
  throw new Error('did not throw')
}

test("mapFile's open failures read as fs's: the same message, code, errno, path and syscall", async (t) => {
  const file = makeFile(dir, 'plain', PAGE)
  const cases = [
    path.join(dir, 'missing'), // ENOENT
    dir, // EISDIR (a shared mapping opens read-write)
    path.join(file, 'below-a-file'), // ENOTDIR
  ]
  for (const target of cases) {
    const expected = thrown(() => fs.openSync(target, 'r+'))
    for (const err of [thrown(() => mapFile(target)), await mapFileAsync(target).catch((e) => e)]) {
      t.true(err instanceof Pmem2Error, target)
      t.is(err.message, expected.message)
      t.is(err.code, expected.code)
      t.is(err.errno, expected.errno)
      t.is(err.path, target)
      t.is(err.syscall, 'open')
      t.deepEqual(Object.keys(err).sort(), Object.keys(expected).sort(), 'enumerable as fs makes them')
    }
  }
  t.is(thrown(() => mapFile(path.join(dir, 'missing'))).message, `ENOENT: no such file or directory, open '${path.join(dir, 'missing')}'`)
  // A failure after the open names the path the user gave, not the fd pmem2 opened.
  const unaligned = thrown(() => mapFile(file, { offset: 100 }))
  t.is(unaligned.code, 'PMEM2_E_OFFSET_UNALIGNED')
  t.is(unaligned.path, file)
  t.is(unaligned.syscall, undefined)
})

test('errors name values as a JavaScript user writes them: PROT_* names, the fd the user gave', (t) => {
  const file = makeFile(dir, 'read-only', PAGE)
  const ro = mapFile(file, { readOnly: true })
  const err = t.throws(() => ro.write(0, Buffer.from('x')), { instanceOf: Pmem2Error, code: 'PMEM2_E_NO_ACCESS' })
  t.is(err!.message, "cannot copy into: the mapping's protection is PROT_READ")
  ro.unmap()
  // 9999 is not open in this process (the kernel's list of our fds says so).
  t.false(fs.readdirSync('/proc/self/fd').includes('9999'))
  const bad = t.throws(() => Source.fromFd(9999), { instanceOf: Pmem2Error, code: 'PMEM2_E_INVALID_FILE_HANDLE' })
  t.regex(bad!.message, /\bfd 9999\b/)
})

test('classes: Config() without new is a TypeError, new Mapping() and new Source() say how those are made', (t) => {
  t.throws(() => (Config as unknown as () => void)(), {
    instanceOf: TypeError,
    code: 'ERR_CONSTRUCT_CALL_REQUIRED',
    message: "Class constructor Config cannot be invoked without 'new'",
  } as never)
  // The receiver of such a call was not turned into a Config.
  const receiver = {}
  t.throws(() => (Config as unknown as (this: object) => void).call(receiver), { instanceOf: TypeError })
  t.throws(() => mapNew(receiver as never, Source.fromAnon(PAGE)), { instanceOf: TypeError, message: /must be an instance of Config/ })
  for (const call of [() => new (Mapping as any)(), () => (Mapping as any)()]) {
    t.throws(call, { instanceOf: TypeError, code: 'ERR_ILLEGAL_CONSTRUCTOR', message: /mapFile\(path, options\).*mapNew\(config, source\)/ } as never)
  }
  t.throws(() => new (Source as any)(3), { instanceOf: TypeError, code: 'ERR_ILLEGAL_CONSTRUCTOR', message: /Source\.fromFd\(fd\)/ } as never)
  // The classes stay what they were: instanceof, names, statics, subclassing.
  const config = new Config()
  t.true(config instanceof Config)
  t.is(Config.name, 'Config')
  t.is(config.constructor, Config)
  class Tuned extends Config {}
  const tuned = new Tuned()
  t.true(tuned instanceof Tuned && tuned instanceof Config)
  tuned.setSharing(Sharing.Private)
  tuned.setRequiredStoreGranularity(Granularity.Page)
  const source = Source.fromAnon(PAGE)
  t.true(source instanceof Source)
  const mapping = mapNew(tuned, source)
  t.true(mapping instanceof Mapping)
  t.is(Object.getPrototypeOf(mapping), Mapping.prototype)
  mapping.unmap()
})

/** What `fn` throws, or what the promise it returns rejects with (`Symbol.asyncDispose`). */
async function failure(fn: () => unknown): Promise<any> {
  try {
    await fn()
  } catch (e) {
    return e
  }
  return undefined
}

test('every Mapping member called without a Mapping says it needs one, naming itself', async (t) => {
  const mapping = mapFile(makeFile(dir, 'unbound', PAGE))
  const proto = Mapping.prototype as any
  const inspectCustom = Symbol.for('nodejs.util.inspect.custom')
  // util.inspect(Mapping.prototype) must work: its inspect member accepts any receiver.
  const names = Reflect.ownKeys(proto).filter((k) => k !== 'constructor' && k !== inspectCustom)
  t.true(names.length >= 25, String(names.length))
  for (const key of names) {
    const label = typeof key === 'string' ? `.${key}` : key === Symbol.dispose ? '[Symbol.dispose]' : '[Symbol.asyncDispose]'
    const descriptor = Object.getOwnPropertyDescriptor(proto, key)!
    const member = descriptor.get ?? descriptor.value
    for (const receiver of [undefined, {}, Object.create(proto), new Config()]) {
      const err = await failure(() => member.call(receiver))
      t.true(err instanceof TypeError, `${label} on ${String(receiver)}: ${err}`)
      t.is(err?.code, 'ERR_INVALID_THIS', label)
      t.true(err?.message.includes(`Mapping.prototype${label}`) && err.message.includes('needs a Mapping as "this"'), err?.message)
    }
  }
  // The message of the common case, as a user reads it.
  const persist = mapping.persist
  t.throws(() => persist(), {
    message: 'Mapping.prototype.persist needs a Mapping as "this": call it as mapping.persist(...), or bind it (mapping.persist.bind(mapping))',
  })
  t.notThrows(() => persist.call(mapping))
  t.notThrows(() => util.inspect(Mapping.prototype))
  mapping.unmap()
})

test('util.inspect(mapping) shows its state; mapping.unmapped tells it without a try/catch', (t) => {
  const file = makeFile(dir, 'inspect', MiB)
  const mapping = mapFile(file)
  t.false(mapping.unmapped)
  const shown = util.inspect(mapping)
  t.regex(shown, /^Mapping \{/)
  for (const part of [
    `size: ${MiB}`,
    "storeGranularity: 'Page'",
    "flushMethod: 'msync'",
    "sharing: 'Shared'",
    "protection: 'PROT_READ | PROT_WRITE'",
    'mapSync: false',
    'unmapped: false',
  ]) {
    t.true(shown.includes(part), `${part} in ${shown}`)
  }
  // The address shown is the one the kernel mapped the file at.
  const address = /address: '0x([0-9a-f]+)'/.exec(shown)![1]
  t.is(BigInt('0x' + address), mapping.address)
  t.true(kernelMappings(mapping.address, MiB)[0].startsWith(address))
  t.is(util.inspect({ nested: { deeper: mapping } }, { depth: 1 }), '{ nested: { deeper: [Mapping] } }')
  t.false(shown.includes('\x1b'), 'no colours unless asked')
  const ro = mapFile(file, { readOnly: true, sharing: Sharing.Private })
  t.true(util.inspect(ro).includes("sharing: 'Private'") && util.inspect(ro).includes("protection: 'PROT_READ',"))
  ro.unmap()
  mapping.unmap()
  t.true(mapping.unmapped)
  t.is(util.inspect(mapping), 'Mapping { unmapped: true }')
  t.throws(() => mapping.size, { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
})

test('Symbol.asyncDispose waits for every pending persistAsync, then unmaps', async (t) => {
  const file = makeFile(dir, 'async-dispose', MiB)
  const mapping = mapFile(file)
  mapping.buffer.write('durable', 0)
  const order: string[] = []
  const pending = [mapping.persistAsync(), mapping.persistAsync(0, PAGE), mapping.persistAsync(PAGE)].map((p, i) =>
    p.then(() => order.push(`persist ${i}`)),
  )
  const disposed = mapping[Symbol.asyncDispose]()
  // Started after disposal began but before it finished waiting: waited for as well.
  pending.push(mapping.persistAsync(2 * PAGE).then(() => order.push('persist 3')))
  t.false(mapping.unmapped, 'not unmapped while persists are pending')
  await disposed
  order.push('disposed')
  await Promise.all(pending)
  t.deepEqual(order.slice(-1), ['disposed'])
  t.deepEqual(order.slice(0, -1).sort(), ['persist 0', 'persist 1', 'persist 2', 'persist 3'])
  t.true(mapping.unmapped)
  // A failed persistAsync is its caller's to handle; disposal still unmaps.
  const other = mapFile(file)
  const failing = other.persistAsync(2 * MiB, 1)
  await other[Symbol.asyncDispose]()
  await t.throwsAsync(failing, { instanceOf: RangeError })
  t.true(other.unmapped)
  // With nothing pending it unmaps at once; a second disposal does nothing.
  const idle = mapFile(file)
  await idle[Symbol.asyncDispose]()
  t.true(idle.unmapped)
  await t.notThrowsAsync(idle[Symbol.asyncDispose]())
})

test('a persistAsync rejection nobody handles is still reported as unhandled, though disposal watches it', (t) => {
  const file = makeFile(dir, 'unhandled', PAGE)
  const script = `
    const p = require(${JSON.stringify(path.join(root, 'index.js'))})
    process.on('unhandledRejection', (e) => console.log('unhandled', e.code))
    const m = p.mapFile(${JSON.stringify(file)})
    m.persistAsync(${2 * PAGE}, 1) // out of range, never awaited
    setTimeout(() => m[Symbol.asyncDispose]().then(() => console.log('disposed', m.unmapped)), 100)`
  t.is(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }), 'unhandled ERR_OUT_OF_RANGE\ndisposed true\n')
})

const NODE24 = node24()
;(NODE24 ? test : test.skip)('`await using` on Node 24 unmaps at the end of the block, after the persistAsync it started', (t) => {
  const file = makeFile(dir, 'await-using', MiB)
  const script = `
    import p from ${JSON.stringify(path.join(root, 'index.mjs'))}
    let outer, settled = false
    {
      await using m = p.mapFile(${JSON.stringify(file)})
      outer = m
      m.buffer.write('await using', 0)
      m.persistAsync().then(() => { settled = true })
    }
    console.log(JSON.stringify({ settled, unmapped: outer.unmapped }))`
  const out = execFileSync(NODE24!, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.deepEqual(JSON.parse(out), { settled: true, unmapped: true })
  t.is(fs.readFileSync(file).subarray(0, 11).toString(), 'await using')
})

test("setProtection with the kernel's PROT_* values is a RangeError naming libpmem2's constants", (t) => {
  const config = new Config()
  for (const [value, name] of [
    [1, 'PROT_READ'],
    [2, 'PROT_WRITE'],
    [3, 'PROT_READ | PROT_WRITE'],
    [7, 'PROT_READ | PROT_WRITE | PROT_EXEC'],
  ] as const) {
    const err = t.throws(() => config.setProtection(value as number), { instanceOf: RangeError, code: 'PMEM2_E_INVALID_PROT_FLAG' } as never)
    t.is((err as any).errno, errorCodes.PMEM2_E_INVALID_PROT_FLAG)
    t.true(err!.message.startsWith(`setProtection(${value}): ${value} is the kernel's ${name}; pmem2 takes libpmem2's PROT_*`), err!.message)
    t.regex(err!.message, /PROT_READ = 1 << 30/)
  }
  // Other unknown bits are libpmem2's error, as before; libpmem2's values pass.
  t.throws(() => config.setProtection((PROT_READ | 8) as number), { instanceOf: Pmem2Error, code: 'PMEM2_E_INVALID_PROT_FLAG' })
  t.notThrows(() => config.setProtection(PROT_READ | PROT_WRITE))
  t.notThrows(() => config.setProtection(0))
  t.throws(() => config.setProtection(MEM_NODRAIN as number), { instanceOf: RangeError })
})

test('__napiBindingTarget is not public: not enumerated, not an ESM export, not in the typings', (t) => {
  const cjs = require('../index.cjs')
  t.false(Object.keys(cjs).includes('__napiBindingTarget'))
  t.false(Object.keys(esm).includes('__napiBindingTarget'))
  t.false(fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8').includes('__napiBindingTarget'))
  // The generated loader still has it.
  t.is(cjs.__napiBindingTarget, 'native')
})
