// Sizes a caller controls never size an allocation before they are checked: each case throws
// in a child process (an abort there fails the test instead of killing ava), and the kernel's
// peak RSS shows that nothing large was allocated or copied first.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { MiB, tempDir, node24 } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = path.join(root, '__test__', 'fixtures', 'limits.cjs')

// Node 24 from the npm registry, installed on first use (helpers.ts); its tests skip with one line
// where it cannot be had, except under CI.
const NODE24 = node24()
const node24Bin = (): string => NODE24!
const testOn = (name: string) => (name.startsWith('Node 24') && !NODE24 ? test.skip : test)

interface Attempt {
  error?: { name: string; code: string; message: string }
  peakGrowth: number
}

function run(node: string, mode: string): any {
  return JSON.parse(
    execFileSync(node, [fixture, tempDir(), mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  )
}

const small = (a: Attempt) => a.peakGrowth < 64 * MiB

for (const [name, node] of [
  ['Node 20', () => process.execPath],
  ['Node 24', node24Bin],
] as Array<[string, () => string]>) {
  testOn(name)(`${name}: persistRanges of a sparse array of length 2^32 - 1 is a TypeError naming the first hole`, (t) => {
    const out = run(node(), 'ranges')
    for (const [attempt, index] of [
      [out.holes, 0],
      [out.oneThenHoles, 1],
    ] as Array<[Attempt, number]>) {
      t.like(attempt.error, {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_TYPE',
        message: `ranges[${index}] must be an [offset, length] pair`,
      })
      t.true(small(attempt), `peak RSS grew ${attempt.peakGrowth} bytes`)
    }
  })

  testOn(name)(`${name}: read(0, 2 ** 40) of a sparse 1 TiB mapping throws a RangeError and allocates nothing`, (t) => {
    const out = run(node(), 'read-huge')
    const attempt = out.read as Attempt
    if (out.maxLength < 2 ** 40) {
      t.deepEqual(attempt.error, {
        name: 'RangeError',
        code: 'ERR_BUFFER_TOO_LARGE',
        message: `Cannot create a Buffer larger than ${out.maxLength} bytes`,
      })
    } else {
      // Within MAX_LENGTH: the runtime's allocator refuses 1 TiB with its own RangeError.
      t.is(attempt.error?.name, 'RangeError')
    }
    t.true(small(attempt), `peak RSS grew ${attempt.peakGrowth} bytes`)
    t.is(out.readSmall, '00000000', 'the mapping is still usable')
  })

  testOn(name)(`${name}: a NUL byte in a path is fs's TypeError ERR_INVALID_ARG_VALUE; a path too long is ENAMETOOLONG`, (t) => {
    const out = run(node(), 'path')
    t.deepEqual(out.nul.error, out.fsNul, 'the same error as fs.openSync')
    t.deepEqual(out.nulAsync.error, out.fsNul, 'mapFileAsync throws it synchronously, as fs.open does')
    t.like(out.long.error, { name: 'Pmem2Error', code: 'ENAMETOOLONG' })
  })
}

test('Node 20: read(0, 2 ** 32 + 1) throws ERR_BUFFER_TOO_LARGE before copying anything', (t) => {
  const out = run(process.execPath, 'read-over-max')
  t.is(out.maxLength, 2 ** 32)
  const attempt = out.read as Attempt
  t.deepEqual(attempt.error, {
    name: 'RangeError',
    code: 'ERR_BUFFER_TOO_LARGE',
    message: 'Cannot create a Buffer larger than 4294967296 bytes',
  })
  t.true(small(attempt), `peak RSS grew ${attempt.peakGrowth} bytes`)
})
