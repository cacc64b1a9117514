// Mappings that are never unmapped are unmapped when garbage-collected; V8 is told what each
// costs, so a loop that yields to the event loop (where Node runs finalizers) keeps the
// kernel's map count and the RSS bounded. Measured in child processes from /proc/self.
// (A loop that never yields cannot free anything: see "Lifetimes" in the README.)
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { MiB, tempDir, node24 } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = path.join(root, '__test__', 'fixtures', 'forgotten.cjs')

// Node 24 from the npm registry, installed on first use (helpers.ts); its tests skip with one line
// where it cannot be had, except under CI.
const NODE24 = node24()
const node24Bin = (): string => NODE24!
const testOn = (name: string) => (name.startsWith('Node 24') && !NODE24 ? test.skip : test)

interface Usage {
  lines: number
  rss: number
}

function run(node: string, kind: string, iterations: number): { before: Usage; peak: Usage; after: Usage } {
  return JSON.parse(
    execFileSync(node, ['--expose-gc', fixture, tempDir(), kind, String(iterations), '100'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 170_000,
    }),
  )
}

const mb = (n: number) => `${(n / MiB).toFixed(0)} MiB`

for (const [name, node] of [
  ['Node 20', () => process.execPath],
  ['Node 24', node24Bin],
] as Array<[string, () => string]>) {
  testOn(name)(`${name}: 10 000 forgotten anonymous 1 MiB mappings, every page touched, yielding every 100: RSS stays bounded`, (t) => {
    const { before, peak, after } = run(node(), 'anon', 10_000)
    t.log(`peak: +${peak.lines - before.lines} maps lines, +${mb(peak.rss - before.rss)}; after: +${after.lines - before.lines} lines`)
    // Unbounded would be 10 000 MiB; without the cost reported to V8, several hundred pile up.
    t.true(peak.rss - before.rss < 400 * MiB, `RSS grew ${mb(peak.rss - before.rss)}`)
    t.true(peak.lines - before.lines < 400, `maps lines grew by ${peak.lines - before.lines}`)
    t.true(after.lines - before.lines < 32, `${after.lines - before.lines} lines left`)
    t.true(after.rss - before.rss < 64 * MiB, `RSS left ${mb(after.rss - before.rss)} above the start`)
  })
}

test('Node 20: 50 000 forgotten shared file mappings, yielding every 100: the map count stays bounded', (t) => {
  const { before, peak, after } = run(process.execPath, 'file', 50_000)
  t.log(`peak: +${peak.lines - before.lines} maps lines, +${mb(peak.rss - before.rss)}; after: +${after.lines - before.lines} lines`)
  // Unbounded would reach vm.max_map_count (65 530) and fail with ENOMEM.
  t.true(peak.lines - before.lines < 2000, `maps lines grew by ${peak.lines - before.lines}`)
  t.true(after.lines - before.lines < 32, `${after.lines - before.lines} lines left`)
})
