// One process of `npm run soak` (scripts/soak.mjs starts it with --expose-gc): the main thread and
// `workers` worker threads each run random pmem2 operations until the deadline, on a file of
// their own and on their own slice of a file shared by every actor, and check every write against
// a shadow copy through plain file I/O. Prints one JSON object with the counts.
//
//   node --expose-gc scripts/soak-actor.mjs '{"dir":..,"process":0,"workers":2,"actors":6,"deadline":..,"seed":..}'
import fs from 'node:fs'
import path from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import {
  mapFile,
  mapFileAsync,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_WB,
  MEM_WC,
  Sharing,
} from 'pmem2'

export const OWN_SIZE = 256 * 1024
export const SLICE = 64 * 1024
const MAX_LIVE = 4 // live mappings per actor
const COPY_FLAGS = [0, MEM_NONTEMPORAL, MEM_TEMPORAL, MEM_WC, MEM_WB, MEM_NONTEMPORAL | MEM_NODRAIN, MEM_NOFLUSH]

export const ownFile = (dir, actor) => path.join(dir, `actor${actor}.bin`)
export const sharedFile = (dir) => path.join(dir, 'shared.bin')

/** A small seeded generator (mulberry32), so that a failing run can be repeated. */
function random(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n) => Math.floor(next() * n)
  return { next, int, pick: (list) => list[int(list.length)] }
}

function pread(file, offset, length) {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(length)
    fs.readSync(fd, buf, 0, length, offset)
    return buf
  } finally {
    fs.closeSync(fd)
  }
}

/** Random operations on pmem2 until `deadline`; every write is checked with pread. */
async function actor({ dir, id, deadline, seed }) {
  const rnd = random(seed)
  const own = { file: ownFile(dir, id), base: 0, length: OWN_SIZE }
  const slice = { file: sharedFile(dir), base: id * SLICE, length: SLICE }
  // What each region of the files must hold: the actor is the only writer of both.
  own.shadow = pread(own.file, 0, OWN_SIZE)
  slice.shadow = pread(slice.file, slice.base, SLICE)
  const live = [] // { m, region, views, private }
  const ops = {}
  let checks = 0
  const problems = []
  const problem = (text) => problems.length < 20 && problems.push(`actor ${id}: ${text}`)

  const check = (region, offset, length, what) => {
    checks++
    const got = pread(region.file, region.base + offset, length)
    const want = region.shadow.subarray(offset, offset + length)
    if (!got.equals(want)) {
      const at = got.findIndex((b, i) => b !== want[i])
      problem(`${what}: ${region.file}@${region.base + offset + at} holds ${got[at]}, wrote ${want[at]}`)
    }
  }
  const range = (region) => {
    const length = 1 + rnd.int(rnd.next() < 0.9 ? 8192 : region.length)
    const offset = rnd.int(region.length - length + 1)
    return [offset, length]
  }

  const handlers = {
    async map() {
      if (live.length >= MAX_LIVE) return
      const region = rnd.next() < 0.5 ? own : slice
      const priv = rnd.next() < 0.1
      const options = priv ? { sharing: Sharing.Private } : {}
      const m = rnd.next() < 0.5 ? mapFile(region.file, options) : await mapFileAsync(region.file, options)
      live.push({ m, region, views: [], private: priv })
    },
    write() {
      if (!live.length) return
      const entry = rnd.pick(live)
      const { m, region } = entry
      const [offset, length] = range(region)
      const at = region.base + offset // offset in the mapping (the whole file)
      const data = Buffer.alloc(length)
      let x = rnd.int(2 ** 31) | 1
      for (let i = 0; i < length; i++) {
        x ^= x << 13
        x ^= x >>> 17
        x ^= x << 5
        data[i] = x
      }
      const how = rnd.int(6)
      if (how === 0) m.write(at, data)
      else if (how === 1) {
        const flags = rnd.pick(COPY_FLAGS)
        m.memcpy(at, data, flags)
        if (flags & MEM_NOFLUSH) m.persist(at, length)
        else if (flags & MEM_NODRAIN) m.drain()
      } else if (how === 2) {
        data.fill(data[0])
        m.memset(at, data[0], length, rnd.pick([0, MEM_NONTEMPORAL, MEM_NODRAIN]))
        m.drain()
      } else if (how === 3) {
        const view = m.view(at, length)
        view.set(data)
        m.persist(at, length)
        if (rnd.next() < 0.3) entry.views.push(view)
      } else if (how === 4) {
        m.buffer.set(data, at)
        const half = length >> 1
        m.persistRanges(half ? [[at, half], [at + half, length - half]] : [[at, length]])
      } else {
        // memmove from a view of the same mapping (overlapping when the ranges meet).
        const from = region.base + rnd.int(region.length - length + 1)
        const src = m.view(from, length)
        data.set(src) // what the move copies, read before it runs
        m.memmove(at, src, 0)
      }
      if (entry.private) {
        // Copy-on-write: the mapping sees the bytes, the file keeps the shadow.
        if (!m.read(at, length).equals(data)) problem(`private mapping does not read back its own write at ${at}`)
        check(region, offset, length, 'a private write')
      } else {
        data.copy(region.shadow, offset)
        check(region, offset, length, `a write (${how})`)
      }
    },
    async persistAsync() {
      if (!live.length) return
      const { m, region } = rnd.pick(live)
      const [offset, length] = range(region)
      await m.persistAsync(region.base + offset, length)
    },
    read() {
      const shared = live.filter((e) => !e.private)
      if (!shared.length) return
      const { m, region } = rnd.pick(shared)
      const [offset, length] = range(region)
      checks++
      if (!m.read(region.base + offset, length).equals(region.shadow.subarray(offset, offset + length))) {
        problem(`read() at ${region.base + offset} differs from the shadow`)
      }
    },
    view() {
      const shared = live.filter((e) => !e.private)
      if (!shared.length) return
      const entry = rnd.pick(shared)
      const [offset, length] = range(entry.region)
      const view = entry.m.view(entry.region.base + offset, length)
      checks++
      if (!view.equals(entry.region.shadow.subarray(offset, offset + length))) problem('a view differs from the shadow')
      if (rnd.next() < 0.5) entry.views.push(view)
    },
    unmap() {
      if (!live.length) return
      const entry = live.splice(rnd.int(live.length), 1)[0]
      const buffer = entry.m.buffer
      entry.m.unmap()
      checks++
      if (buffer.length !== 0 || entry.views.some((v) => v.length !== 0)) problem('unmap() left a view attached')
    },
    forget() {
      // Dropped without unmap(): the garbage collector unmaps it.
      if (live.length) live.splice(rnd.int(live.length), 1)
    },
    gc() {
      globalThis.gc()
    },
    async yield() {
      await tick()
    },
    verify() {
      check(own, 0, OWN_SIZE, 'the whole own file')
      check(slice, 0, SLICE, 'the whole slice')
    },
  }
  // Weights: mostly writes; mapping churn, views and collection often enough to matter.
  const table = Object.entries({
    map: 8, write: 40, persistAsync: 4, read: 8, view: 8, unmap: 6, forget: 2, gc: 1, yield: 10, verify: 2,
  }).flatMap(([op, w]) => Array(w).fill(op))

  let n = 0
  while (Date.now() < deadline) {
    const op = rnd.pick(table)
    try {
      await handlers[op]()
      ops[op] = (ops[op] ?? 0) + 1
    } catch (e) {
      problem(`${op} threw ${e.code ?? ''} ${e.message}`)
      ops.failed = (ops.failed ?? 0) + 1
    }
    // Finalizers of forgotten mappings run on later turns of the event loop.
    if (++n % 64 === 0) await tick()
  }
  for (const { m } of live) m.unmap()
  live.length = 0
  handlers.verify()
  return { id, ops, checks, problems }
}

/** Lines of /proc/self/maps and entries of /proc/self/fd that name a file in `dir`. */
function leftBehind(dir) {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(dir)).length
  const fds = fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)
    } catch {
      return false
    }
  }).length
  return { maps, fds }
}

async function main() {
  if (!isMainThread) {
    parentPort.postMessage(await actor(workerData))
    return
  }
  const config = JSON.parse(process.argv[2])
  const first = config.process * (config.workers + 1)
  const runs = []
  for (let w = 1; w <= config.workers; w++) {
    const data = { dir: config.dir, id: first + w, deadline: config.deadline, seed: config.seed + first + w }
    runs.push(
      new Promise((resolve, reject) => {
        const worker = new Worker(fileURLToPath(import.meta.url), { workerData: data })
        worker.once('message', resolve)
        worker.once('error', reject)
      }),
    )
  }
  runs.push(actor({ dir: config.dir, id: first, deadline: config.deadline, seed: config.seed + first }))
  const actors = await Promise.all(runs)
  // Every mapping was unmapped or forgotten: after collection nothing of the files is left.
  for (let i = 0; i < 8; i++) {
    globalThis.gc()
    await tick()
  }
  process.stdout.write(JSON.stringify({ pid: process.pid, actors, left: leftBehind(config.dir) }))
}

// scripts/soak.mjs imports the file names from here; only a run of this file (or its workers) acts.
if (!isMainThread || process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
