#!/usr/bin/env node
// Power cuts on real DAX: boots a guest (guest.mjs) with an fsdax, a devdax and a raw NVDIMM,
// runs four writers (powercut-log.mjs: fsdax and devdax, each with write+persist and with
// MEM_NONTEMPORAL+drain) plus a control writer, and kills QEMU with SIGKILL at a random moment
// while they append. The next boot uses the same NVDIMM images: e2fsck replays the journal, the
// writers verify their logs and report how many records they hold, and every record the host
// saw acknowledged on the console must be there, intact. Then they append again, until the next
// cut. A last boot only verifies.
//
//   node scripts/dax-guest/powercut.mjs [--cuts N] [--seed S]
//
// The control log is on ext4 without DAX (the page cache) with PMEM2_FORCE_GRANULARITY=
// CACHE_LINE, so its "persist" flushes CPU caches and never writes the page cache back: a power
// cut must lose acknowledged records there, and the run fails if it never does (the loop could
// not see a loss). TCG models no CPU cache: every store the guest made is in the image when QEMU
// dies, so this loop cannot catch a missing CLWB or fence (RELIABILITY.md, "Real DAX and power
// cuts").
import fs from 'node:fs'
import path from 'node:path'

import { boot, ROOT } from './guest.mjs'

const WRITER = 'scripts/dax-guest/powercut-log.mjs'
const LOGS = [
  { name: 'fsdax-write', target: 'file:$DAX_FSDAX_DIR/cut-write', mode: 'write' },
  { name: 'fsdax-nt', target: 'file:$DAX_FSDAX_DIR/cut-nt', mode: 'nt' },
  { name: 'devdax-write', target: 'devdax:$DAX_DEVDAX:0', mode: 'write' },
  { name: 'devdax-nt', target: 'devdax:$DAX_DEVDAX:1', mode: 'nt' },
]
const CONTROL = { name: 'control', target: 'file:$DAX_PAGECACHE_DIR/cut-control', mode: 'write', control: true }
const ALL = [...LOGS, CONTROL]
/** The largest number of acknowledgements (all real logs together) before a cut. */
const MAX_ACKS = 400

/** A small seeded generator (mulberry32), so a failing run can be repeated with --seed. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function jobScript(action) {
  const lines = ALL.map((l) => {
    const env = l.control ? 'PMEM2_FORCE_GRANULARITY=CACHE_LINE POWERCUT_RESET_BAD=1 ' : ''
    return `${env}node ${WRITER} ${l.name} "${l.target}" ${l.mode} ${action} &`
  })
  return [...lines, 'wait'].join('\n')
}

export async function powerCuts({ cuts, seed, images, say = console.log }) {
  const rand = random(seed)
  // Per log: the highest acknowledged id (-1: none yet).
  const acked = Object.fromEntries(ALL.map((l) => [l.name, -1]))
  const stats = { cuts: 0, verified: 0, recovered: 0, unacknowledged: 0, controlLosses: 0, boots: 0, acks: 0 }
  const failures = []

  for (let round = 0; round <= cuts; round++) {
    const last = round === cuts
    const target = Math.floor(rand() * MAX_ACKS)
    const delay = Math.floor(rand() * 30)
    const have = new Set()
    let acks = 0
    let cutting = false
    const started = Date.now()
    const { child, done } = boot({
      mode: 'fsdax,devdax,raw',
      imageDir: images,
      command: jobScript(last ? 'verify' : 'append'),
      timeout: 600,
      onLine: (line) => {
        const words = line.split(' ')
        const [what, name] = words
        if (!(name in acked)) {
          if (/error|fail|bad|panic|warn/i.test(line)) say(`  guest: ${line}`)
          return
        }
        const control = name === CONTROL.name
        if (what === 'have') {
          const count = Number(words[2])
          const want = acked[name] + 1
          if (count < want) {
            if (control) stats.controlLosses++
            else failures.push(`round ${round}: ${name} holds ${count} records, ${want} were acknowledged`)
          } else if (!control) {
            stats.verified += want
            stats.recovered += count
            stats.unacknowledged += count - want
          }
          // The writer goes on after what it found.
          acked[name] = count - 1
          have.add(name)
        } else if (what === 'bad') {
          if (control) stats.controlLosses++
          else failures.push(`round ${round}: ${line}`)
        } else if (what === 'ack') {
          const id = Number(words[2])
          if (id !== acked[name] + 1) failures.push(`round ${round}: ${name} acknowledged ${id} after ${acked[name]}`)
          acked[name] = id
          if (!control) acks++
        } else if (what === 'full') {
          failures.push(`round ${round}: ${name} is full: fewer or shorter cuts, or larger slots`)
        }
        if (failures.length && !cutting) {
          cutting = true
          child.kill('SIGKILL')
        }
        // The cut: once every writer has verified its log and the real logs have made `target`
        // acknowledgements, after a few more milliseconds, wherever the writers are.
        if (!last && !cutting && have.size === ALL.length && acks >= target) {
          cutting = true
          setTimeout(() => child.kill('SIGKILL'), delay)
        }
      },
    })
    const result = await done
    stats.boots++
    stats.acks += acks
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    if (failures.length) break
    if (have.size !== ALL.length) {
      failures.push(`round ${round}: only ${[...have].join(', ')} reported (status ${result.status})`)
      break
    }
    if (last) {
      if (result.status !== 0) failures.push(`verifying boot: status ${result.status}`)
      say(`verified every log in ${seconds} s`)
    } else {
      if (!result.killed) {
        failures.push(`round ${round}: the guest ended by itself (status ${result.status})`)
        break
      }
      stats.cuts++
      say(`cut ${stats.cuts}/${cuts} after ${acks} acknowledgements (+${delay} ms), ${seconds} s`)
    }
  }
  return { stats, failures }
}

async function main(argv) {
  let cuts = 20
  let seed = Date.now() % 1_000_000
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cuts') cuts = Number(argv[++i])
    else if (argv[i] === '--seed') seed = Number(argv[++i])
    else throw new Error(`usage: powercut.mjs [--cuts N] [--seed S] (unknown ${argv[i]})`)
  }
  const images = fs.mkdtempSync(path.join(ROOT, '.cache/dax-guest/powercut-'))
  const start = Date.now()
  console.log(`power cuts: ${cuts}, seed ${seed}, images in ${path.relative(ROOT, images)}`)
  try {
    const { stats, failures } = await powerCuts({ cuts, seed, images })
    const minutes = ((Date.now() - start) / 60000).toFixed(1)
    console.log(
      `power cuts: ${stats.cuts} cuts in ${stats.boots} boots, ${minutes} min; ${stats.acks} acknowledgements; ` +
        `${stats.verified} acknowledged records checked after cuts (${stats.unacknowledged} more recovered ` +
        `than acknowledged); control log lost acknowledged records in ${stats.controlLosses} of ${stats.cuts} cuts`,
    )
    if (stats.cuts > 0 && stats.controlLosses === 0) {
      failures.push('the control log never lost an acknowledged record: this loop cannot see a loss')
    }
    if (failures.length) {
      console.log(`power cuts FAILED (seed ${seed}):\n  ${failures.join('\n  ')}`)
      console.log('0 passed, 1 failed')
      process.exitCode = 1
    } else {
      console.log('1 passed, 0 failed')
    }
  } finally {
    if (process.exitCode) console.log(`images kept in ${images}`)
    else fs.rmSync(images, { recursive: true, force: true })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`powercut: ${e.stack}`)
    process.exit(1)
  })
}
