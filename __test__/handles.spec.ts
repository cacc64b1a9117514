// The data path finds a mapping by a numeric handle that never reaches user code and never
// names another mapping, however many mappings a process keeps.
import test from 'ava'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

import { Mapping, mapFile } from '../index.mjs'
import { makeFile, MiB, tempDir } from './helpers.js'

const dir = tempDir()
const fixture = fileURLToPath(new URL('./fixtures/handles.cjs', import.meta.url))

test('with 2^21 + 8 Mapping objects alive, new mappings of two files write only to their own file', async (t) => {
  // About a minute of CPU time in mmap/munmap: 2^21 mappings are made and unmapped.
  t.timeout(15 * 60_000)
  const fileA = makeFile(dir, 'many-a', 64 * 1024)
  const fileB = makeFile(dir, 'many-b', 64 * 1024)
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', fixture, fileA, fileB], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  const out = JSON.parse(stdout) as { live: number; errors: string[]; fileA: string[]; fileB: string[] }
  t.is(out.live, 2 ** 21)
  t.deepEqual(out.errors, [])
  t.deepEqual(
    out.fileA,
    Array.from({ length: 16 }, (_, i) => `A${i}`),
  )
  t.deepEqual(
    out.fileB,
    Array.from({ length: 8 }, (_, i) => `B${i}`),
  )
})

test('a frozen mapping works: write, persist, memcpy, memset, persistRanges, view, unmap', (t) => {
  const file = makeFile(dir, 'frozen', MiB)
  const mapping = Object.freeze(mapFile(file))
  mapping.write(0, Buffer.from('frozen'))
  mapping.persist(0, 6)
  mapping.memcpy(8, Buffer.from('copy'))
  mapping.memset(16, 0x61, 4)
  mapping.persistRanges([[0, 20]])
  mapping.flush(0, 20)
  mapping.drain()
  t.is(mapping.view(0, 6).toString(), 'frozen')
  t.true(Object.isFrozen(mapping))
  mapping.unmap()
  t.is(fs.readFileSync(file).subarray(0, 20).toString('latin1'), 'frozen\0\0copy\0\0\0\0aaaa')
  t.throws(() => mapping.write(0, Buffer.from('x')), { code: 'PMEM2_E_MAPPING_NOT_FOUND' })
})

test('no handle is visible on a mapping, before or after the data path ran', (t) => {
  const mapping = mapFile(makeFile(dir, 'invisible', MiB))
  t.deepEqual(Reflect.ownKeys(mapping), [])
  mapping.write(0, Buffer.from('x'))
  mapping.persist(0, 1)
  t.deepEqual(Reflect.ownKeys(mapping), [])
  t.deepEqual(Object.getOwnPropertySymbols(mapping), [])
  mapping.unmap()
})

test('the data-path methods refuse any receiver but a Mapping, including a Proxy of one', (t) => {
  const mapping = mapFile(makeFile(dir, 'receivers', MiB))
  let trapped = 0
  const proxy = new Proxy(mapping, {
    get(target, key) {
      trapped++
      return Reflect.get(target, key)
    },
    getPrototypeOf(target) {
      trapped++
      return Reflect.getPrototypeOf(target)
    },
  })
  const persist = Mapping.prototype.persist
  for (const receiver of [{}, Object.create(Mapping.prototype), proxy, Object.freeze({}), undefined, 42]) {
    t.throws(() => persist.call(receiver, 0, 1), { instanceOf: TypeError, code: 'ERR_INVALID_THIS', message: /needs a Mapping as "this"/ })
  }
  t.is(trapped, 0, 'no trap of the Proxy ran')
  mapping.unmap()
})
