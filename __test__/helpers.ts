// Shared fixtures for the specs: temporary files and what the kernel says about mappings.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const PAGE = 4096
export const MiB = 1 << 20

/**
 * Set by the real-DAX tier (scripts/dax-guest) to what a shared mapping of a file in
 * os.tmpdir() really gets there, without forcing: 'CACHE_LINE', or 'BYTE' with eADR.
 */
export const REAL_DAX = process.env.PMEM2_TEST_REAL_DAX as 'CACHE_LINE' | 'BYTE' | undefined

/** A fresh temporary directory (in `parent`, default os.tmpdir()), removed when the process exits. */
export function tempDir(parent = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(parent, 'pmem2-test-'))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A fresh temporary directory on the page cache: os.tmpdir(), or PMEM2_TEST_PAGE_CACHE_DIR on the real-DAX tier. */
export function pageCacheDir(): string {
  const parent = process.env.PMEM2_TEST_PAGE_CACHE_DIR
  if (REAL_DAX && !parent) throw new Error('PMEM2_TEST_REAL_DAX needs PMEM2_TEST_PAGE_CACHE_DIR for the PAGE tests')
  return tempDir(parent)
}

/** The environment that gives shared mappings of os.tmpdir() files `granularity`: forced unless real. */
export function granularityEnv(granularity: 'BYTE' | 'CACHE_LINE' | 'PAGE'): Record<string, string> {
  return REAL_DAX === granularity ? {} : { PMEM2_FORCE_GRANULARITY: granularity }
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
