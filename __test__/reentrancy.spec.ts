// User JavaScript that runs inside a pmem2 call and calls pmem2 again (mapFile, unmap() of the
// mapping in use, persist, view, read) never crashes the process or corrupts a result, and
// pmem2 builds its errors without running user setters at all. In a child process, so that an
// abort fails the test instead of killing ava.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { tempDir, node24 } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = path.join(root, '__test__', 'fixtures', 'reentrancy.cjs')

// Node 24 from the npm registry, installed on first use (helpers.ts); its tests skip with one line
// where it cannot be had, except under CI.
const NODE24 = node24()
const node24Bin = (): string => NODE24!
const testOn = (name: string) => (name.startsWith('Node 24') && !NODE24 ? test.skip : test)

const thrown = (cls: string, code: string, hooks = 0) => [{ ok: false, class: cls, code, ownCode: true, hooks }]

for (const [name, node] of [
  ['Node 20', () => process.execPath],
  ['Node 24', node24Bin],
] as Array<[string, () => string]>) {
  testOn(name)(`${name}: hostile setters, getters, builtins and base classes re-entering pmem2, 200 rounds each`, (t) => {
    const out = JSON.parse(
      execFileSync(node(), ['--expose-gc', fixture, tempDir()], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 120_000,
      }),
    )
    // Errors are built with no user code running: setters and getters of code, errno,
    // message, name and cause on Error, RangeError and TypeError prototypes stay untouched.
    t.deepEqual(out['persist out of range'], thrown('RangeError', 'ERR_OUT_OF_RANGE'))
    t.deepEqual(out['persist bad type'], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'))
    t.deepEqual(out['view too large'], thrown('RangeError', 'ERR_OUT_OF_RANGE'))
    t.deepEqual(out['flags out of range'], thrown('RangeError', 'ERR_OUT_OF_RANGE'))
    t.deepEqual(out['persistRanges bad pair'], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'))
    t.deepEqual(out['missing file'], thrown('Pmem2Error', 'ENOENT'))
    t.deepEqual(out['NUL in path'], thrown('TypeError', 'ERR_INVALID_ARG_VALUE'))
    t.deepEqual(out['mapNew bad config'], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'))
    t.deepEqual(out['read too large'], thrown('RangeError', 'ERR_BUFFER_TOO_LARGE'))
    for (const call of ['write', 'buffer', 'view', 'read', 'size']) {
      t.deepEqual(out[`${call} after unmap`], thrown('Pmem2Error', 'PMEM2_E_MAPPING_NOT_FOUND'), call)
    }
    t.deepEqual(out['hook calls while building errors'], [0])
    // Replaced Buffer.from, Buffer.allocUnsafeSlow, WeakMap.prototype.get/set and
    // Object.defineProperty are never called: pmem2 captured the originals at load.
    t.deepEqual(out['read with replaced builtins'], [{ ok: true, value: 'builtins', hooks: 0 }])
    t.deepEqual(out['buffer with replaced builtins'], [{ ok: true, value: 'builtins', hooks: 0 }])
    t.deepEqual(out['frozen with replaced WeakMap'], [{ ok: true, hooks: 0 }])
    t.deepEqual(out['hook calls with replaced builtins'], [0])
    // Getters pmem2 must read run, and may unmap the mapping in use: the call then sees it.
    t.deepEqual(out['persistRanges getter unmaps'], thrown('Pmem2Error', 'PMEM2_E_MAPPING_NOT_FOUND', 1))
    t.deepEqual(out['persistRanges proxy element'], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'))
    t.deepEqual(out['persistRanges proxy array'], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'))
    t.deepEqual(out['mapFile options getters'], [{ ok: true, value: 65536, hooks: 2 }])
    t.deepEqual(out['mapFileAsync options getters'], [{ ok: true, value: 'function', hooks: 2 }])
    // valueOf is never called: an object is not a number.
    for (const what of ['offset', 'length', 'flags']) {
      t.deepEqual(out[`valueOf ${what}`], thrown('TypeError', 'ERR_INVALID_ARG_TYPE'), what)
    }
    t.deepEqual(out['valueOf calls'], [0])
    // Rejections of the async forms, built when the task settles.
    t.deepEqual(out['persistAsync out of range'], [{ ok: false, code: 'ERR_OUT_OF_RANGE', hooks: 0 }])
    t.deepEqual(out['mapFileAsync missing file'], [{ ok: false, code: 'ENOENT', hooks: 0 }])
    for (const settled of out['persistAsync then unmap']) {
      // Either the msync ran before unmap() took the mapping, or it found it unmapped.
      t.true(settled.ok || settled.code === 'PMEM2_E_MAPPING_NOT_FOUND', JSON.stringify(settled))
      t.is(settled.hooks, 0)
    }
    // A replaced base class of Pmem2Error runs user code inside every construction.
    t.deepEqual(out['Pmem2Error with hostile base'], thrown('Pmem2Error', 'PMEM2_E_MAPPING_NOT_FOUND', 1))
    t.deepEqual(out['hostile base constructions'], [200])
    t.is(out.mappingsLeft, 0, 'every mapping made by the hooks is gone')
    t.is(out.fileA, 'options\0builtins')
    t.is(out.fileB, 'other')
  })
}
