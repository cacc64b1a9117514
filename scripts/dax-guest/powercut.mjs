#!/usr/bin/env node
// Power cuts on real DAX: boots a guest (guest.mjs) with an fsdax, a devdax and a raw NVDIMM,
// runs the writer (powercut-log.mjs) with four logs (fsdax and devdax, each with write+persist
// and with MEM_NONTEMPORAL+drain) and a control log, and kills QEMU with SIGKILL at a random
// moment while it appends. The next boot uses the same NVDIMM images: e2fsck replays the
// journal, the writer verifies the logs and reports how many records each holds, and every
// record the host saw acknowledged on the console must be there, intact. Then it appends
// again, until the next cut. A last boot only verifies.
//
//   node scripts/dax-guest/powercut.mjs [--cuts N] [--seed S]
//
// The control log is a file on ext4 without DAX (the page cache) that the writer acknowledges
// without ever persisting it: a power cut must lose acknowledged records there, and the run
// fails if it never does (the loop could not see a loss). TCG models no CPU cache: every store
// the guest made is in the image when QEMU dies, so this loop cannot catch a missing CLWB or
// fence (RELIABILITY.md, "Real DAX and power cuts").
import fs from 'node:fs'
import path from 'node:path'

import { boot, ROOT, SCRATCH } from './guest.mjs'

const WRITER = 'scripts/dax-guest/powercut-log.mjs'
/** The logs, and the mapping each must report ("have NAME COUNT GRANULARITY mapSync=..."). */
const LOGS = [
  { name: 'fsdax-write', spec: 'fsdax-write:write:file:$DAX_FSDAX_DIR/cut-write', mapping: 'CacheLine mapSync=true' },
  { name: 'fsdax-nt', spec: 'fsdax-nt:nt:file:$DAX_FSDAX_DIR/cut-nt', mapping: 'CacheLine mapSync=true' },
  { name: 'devdax-write', spec: 'devdax-write:write:devdax:$DAX_DEVDAX:0', mapping: 'CacheLine mapSync=true' },
  { name: 'devdax-nt', spec: 'devdax-nt:nt:devdax:$DAX_DEVDAX:1', mapping: 'CacheLine mapSync=true' },
]
const CONTROL = {
  name: 'control',
  spec: 'control:forget:file:$DAX_PAGECACHE_DIR/cut-control',
  mapping: 'Page mapSync=false',
  control: true,
}
const ALL = [...LOGS, CONTROL]
/** The largest number of acknowledgements (all real logs together) before a cut. */
const MAX_ACKS = 400

/**
 * A small seeded generator (mulberry32): --seed repeats where a run cuts (after how many
 * acknowledgements, how many milliseconds later), not the emulator's timing.
 */
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
  return `exec node ${WRITER} ${action} ${ALL.map((l) => `"${l.spec}"`).join(' ')}`
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
    let controlLost = false
    const begin = Date.now()
    const { started, done } = boot({
      mode: 'fsdax,devdax,raw',
      imageDir: images,
      command: jobScript(last ? 'verify' : 'append'),
      timeout: 600,
      // One CPU: the writer is one thread, and the other lane of the tier needs the second.
      smp: 1,
      memory: 1024,
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
          const mapping = words.slice(3).join(' ')
          const want = ALL.find((l) => l.name === name).mapping
          if (mapping !== want) failures.push(`round ${round}: ${name} is mapped ${mapping}, not ${want}`)
          const acknowledged = acked[name] + 1
          if (count < acknowledged) {
            if (control) controlLost = true
            else failures.push(`round ${round}: ${name} holds ${count} records, ${acknowledged} were acknowledged`)
          } else if (!control) {
            stats.verified += acknowledged
            stats.recovered += count
            stats.unacknowledged += count - acknowledged
          }
          // The writer goes on after what it found.
          acked[name] = count - 1
          have.add(name)
        } else if (what === 'bad') {
          if (control) controlLost = true
          else failures.push(`round ${round}: ${line}`)
        } else if (what === 'ack') {
          const id = /^\d+$/.test(words[2] ?? '') && words.length === 3 ? Number(words[2]) : NaN
          if (id !== acked[name] + 1) failures.push(`round ${round}: ${name} acknowledged ${id} after ${acked[name]}: ${JSON.stringify(line)}`)
          acked[name] = id
          if (!control) acks++
        } else if (what === 'full') {
          failures.push(`round ${round}: ${name} is full: fewer or shorter cuts, or larger slots`)
        }
        if (failures.length && !cutting) {
          cutting = true
          started.child.kill('SIGKILL')
        }
        // The cut: once every writer has verified its log and the real logs have made `target`
        // acknowledgements, after a few more milliseconds, wherever the writers are.
        if (!last && !cutting && have.size === ALL.length && acks >= target) {
          cutting = true
          setTimeout(() => started.child.kill('SIGKILL'), delay)
        }
      },
    })
    const result = await done
    if (failures.length) {
      say(`round ${round}, the console's last lines:\n${result.lines.slice(-80).map((l) => `    ${l}`).join('\n')}`)
    }
    stats.boots++
    stats.acks += acks
    if (controlLost) stats.controlLosses++
    const seconds = ((Date.now() - begin) / 1000).toFixed(1)
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
  fs.mkdirSync(SCRATCH, { recursive: true })
  const images = fs.mkdtempSync(path.join(SCRATCH, 'powercut-'))
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
