// examples/append-log: kill -9 the writer mid-stream; every acknowledged record must be there.
import test from 'ava'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { tempDir } from './helpers.js'

const log = fileURLToPath(new URL('../examples/append-log/log.mjs', import.meta.url))
const dir = tempDir()

interface Recovered {
  tail: number
  count: number
  records: { id: number; text: string }[]
}

const recover = (file: string): Recovered =>
  JSON.parse(execFileSync(process.execPath, [log, 'recover', file], { encoding: 'utf8' }))

/** Starts an endless writer, kills it with SIGKILL after `after` acknowledgements, returns the acknowledged ids. */
function writeThenKill(file: string, after: number): Promise<{ acked: number[]; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [log, 'append', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    const acked: number[] = []
    let pending = ''
    let stderr = ''
    let killed = false
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString()
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) {
        const m = /^ack (\d+)$/.exec(line)
        if (!m) return reject(new Error(`unexpected output ${JSON.stringify(line)}`))
        acked.push(Number(m[1]))
      }
      if (!killed && acked.length >= after) {
        killed = true
        child.kill('SIGKILL') // mid-write: the writer never stops between records by itself
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited (${code}) before it was killed: ${stderr}`))
      else resolve({ acked, signal })
    })
  })
}

test('every acknowledged record survives kill -9 of the writer, three times on the same log', async (t) => {
  const file = path.join(dir, 'kill9.log')
  const acknowledged: number[] = []
  for (const after of [150, 400, 250]) {
    const { acked } = await writeThenKill(file, after)
    t.true(acked.length >= after)
    acknowledged.push(...acked)
    const recovered = recover(file)
    // Ids are consecutive from 0, each written once, resuming after what was recovered.
    t.deepEqual(
      recovered.records.map((r) => r.id),
      Array.from({ length: recovered.count }, (_, i) => i),
    )
    const last = acknowledged[acknowledged.length - 1]
    t.true(recovered.count >= last + 1, `acknowledged up to ${last}, recovered ${recovered.count}`)
    t.true(recovered.count <= last + 2, `at most the one record in flight beyond the last ack: ${last} ${recovered.count}`)
    for (const r of recovered.records) t.is(r.text, `record ${r.id} `.repeat(1 + (r.id % 7)))
    t.log(`killed after ${acked.length} acks this round; ${recovered.count} records recovered, tail ${recovered.tail}`)
  }
  // Every acknowledged id, across the three writers, is present.
  const present = new Set(recover(file).records.map((r) => r.id))
  t.deepEqual(acknowledged.filter((id) => !present.has(id)), [])
})

test('recovery refuses a damaged committed record and ignores bytes past the tail', (t) => {
  const file = path.join(dir, 'damaged.log')
  execFileSync(process.execPath, [log, 'append', file, '20'])
  const { tail, count } = recover(file)
  t.is(count, 20)
  // Garbage past the committed tail (a record in flight when the writer died) is ignored.
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from([0xff, 0xff, 0, 0, 1, 2, 3, 4]), 0, 8, tail)
  t.is(recover(file).count, 20)
  // A flipped byte inside a committed record is reported, not returned.
  fs.writeSync(fd, Buffer.from('X'), 0, 1, 4096 + 8 + 3)
  fs.closeSync(fd)
  const err = t.throws(() => execFileSync(process.execPath, [log, 'recover', file], { stdio: 'pipe' }))
  t.regex(String((err as { stderr?: Buffer }).stderr), /^log\.mjs: .*record at 4096 is damaged\n$/)
})
