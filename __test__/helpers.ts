// Shared fixtures for the specs: temporary files and what the kernel says about mappings.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'

export const PAGE = 4096
export const MiB = 1 << 20

/** A fresh temporary directory, removed when the process exits. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmem2-test-'))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Creates a file of `size` bytes (sparse) and returns its path. */
export function makeFile(dir: string, name: string, size: number): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, '')
  fs.truncateSync(file, size)
  return file
}

/** The lines of /proc/self/maps that describe `[start, start+len)` (what the kernel has mapped). */
export function kernelMappings(address: bigint, length: number): string[] {
  const start = address
  const end = address + BigInt(length)
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line)
      if (!m) return false
      const lo = BigInt('0x' + m[1])
      const hi = BigInt('0x' + m[2])
      return lo < end && hi > start
    })
}

/** Reads a file from a separate process, as another program would. */
export function readFromAnotherProcess(file: string, offset: number, length: number): Buffer {
  return execFileSync('dd', [`if=${file}`, 'bs=1', `skip=${offset}`, `count=${length}`, 'status=none'])
}

/** Number of open file descriptors of this process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length
}

/** pmem2's test-only counters (not in the typings): buffers unmap() would detach, and guards not yet finalized. */
export const internals = createRequire(import.meta.url)('../index.js').__pmem2Internals as {
  counts(mapping: unknown): { tracked: number; outstanding: number }
}
