// unmap() releases the file at once; the address range stays reserved while an escaped view
// (ArrayBuffer.prototype.transfer() on Node >= 22) can still reach it. Run in child processes on
// the system Node (20) and on Node 24 installed as an npm package on first use (helpers.ts).
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { makeFile, MiB, node24, tempDir } from './helpers.js'

const dir = tempDir()
const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = (name: string) => path.join(root, '__test__', 'fixtures', name)
// Installed from the npm registry on first use; without it (offline) the Node 24 tests are
// skipped with one line, except under CI.
const NODE24 = node24()
const test24 = NODE24 ? test : test.skip

function run(node: string, args: string[]): any {
  const out = execFileSync(node, ['--expose-gc', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return JSON.parse(out)
}

interface Escape {
  how: string
  movedLength: number
  sawFileBefore: boolean
  linesAfterUnmap: string[]
  readAfter: string
  stillWritable: boolean
  fileAfter: string
  overlapping: number
  laterSee: string[]
  linesWhileReachable: number
  linesAfterCollect: number
}

test('Node 20: unmap detaches every view and releases the range at once; clones are copies', (t) => {
  const file = makeFile(dir, 'node20', MiB)
  const out = run(process.execPath, [fixture('escape.cjs'), file, 'detach'])
  t.regex(out.node, /^v20\./)
  t.false(out.hasTransfer, 'Node 20 has no ArrayBuffer.prototype.transfer')
  t.deepEqual(out.detach, { lengths: [0, 0, 0, 0], read: true, linesAfterUnmap: 0 })
  t.deepEqual(out.clone, { structuredClone: 'copy', postMessage: 'copy' })
})

test24('Node 24: a transferred buffer reads and writes anonymous memory after unmap, never the file or a newer mapping', (t) => {
  const file = makeFile(dir, 'node24', MiB)
  const out = run(NODE24!, [fixture('escape.cjs'), file, 'escape'])
  t.regex(out.node, /^v24\./)
  t.true(out.hasTransfer)
  t.deepEqual(out.detach, { lengths: [0, 0, 0, 0], read: true, linesAfterUnmap: 0 })
  t.deepEqual(out.clone, { structuredClone: 'DataCloneError', postMessage: 'DataCloneError' })
  t.deepEqual(
    out.escapes.map((e: Escape) => e.how),
    ['transfer', 'transferToFixedLength', 'view'],
  )
  for (const e of out.escapes as Escape[]) {
    const what = `${e.how}: ${JSON.stringify(e)}`
    t.true(e.sawFileBefore, what)
    t.is(e.movedLength, e.how === 'view' ? 4096 : MiB, what)
    // The file is released at once: the range is private anonymous memory now.
    t.is(e.linesAfterUnmap.length, 1, what)
    t.regex(e.linesAfterUnmap[0], /^[0-9a-f]+-[0-9a-f]+ rw-p 00000000 00:00 0 +$/, what)
    t.is(e.readAfter, '00'.repeat(8), what)
    t.true(e.stillWritable, what)
    t.is(e.fileAfter, 'original', `the file did not change after unmap (${what})`)
    t.is(e.overlapping, 0, `no new mapping over the reserved range (${what})`)
    t.deepEqual(e.laterSee, ['original'], what)
    t.is(e.linesWhileReachable, 1, `reserved while the buffer is reachable (${what})`)
    t.is(e.linesAfterCollect, 0, `released once the buffer is collected (${what})`)
  }
  t.is(fs.readFileSync(file).subarray(0, 8).toString(), 'original')
})

// Only the buffers' finalizers keep a retired range reserved, not the Mapping object.
test24('Node 24: the reservation goes once the transferred buffer is collected, even while the unmapped Mapping is referenced', (t) => {
  const file = makeFile(dir, 'node24-held', MiB)
  const out = run(NODE24!, [fixture('escape.cjs'), file, 'escape-hold-mapping'])
  t.is(out.escapes[0].linesWhileReachable, 1)
  t.is(out.escapes[0].linesAfterCollect, 0)
})

test24('Node 24: `using` unmaps at the end of the scope', (t) => {
  const file = makeFile(dir, 'using', MiB)
  const out = run(NODE24!, [fixture('using.mjs'), file])
  t.deepEqual(out, { inside: 1, after: 0, bufferLength: 0 })
  t.is(fs.readFileSync(file).subarray(0, 5).toString(), 'using')
})
