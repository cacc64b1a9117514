// Shared fixtures for the specs: temporary files and what the kernel says about mappings.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

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

/** Whether this run must prove everything: `CI` is set (as `.ci/run` sets it). */
export const inCI = !!process.env.CI && process.env.CI !== '0' && process.env.CI !== 'false'

/**
 * Checks a prerequisite this machine may lack (a tool, a capability, a newer Node). When it is
 * missing, prints one line saying what to install and returns false, so the caller registers its
 * tests with `test.skip`; with `CI` set a missing prerequisite throws instead, so CI never skips.
 */
export function prerequisite(what: string, present: boolean, missing: string): boolean {
  if (present) return true
  const line = `SKIPPED ${what}: ${missing}`
  if (inCI) throw new Error(`${line} (CI is set: nothing may be skipped)`)
  console.log(line)
  return false
}

/** Whether `program` runs with `args` (exit status 0). */
export function runs(program: string, ...args: string[]): boolean {
  return spawnSync(program, args, { stdio: 'ignore' }).status === 0
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The path of a Node 24 binary for tests of newer runtimes (`ArrayBuffer.prototype.transfer`,
 * `using`), installed on first use from the npm registry as the package `node-linux-<arch>@24`
 * into `.cache/node24` (it is not a devDependency: its `node` bin would shadow the system node in
 * npm scripts). `undefined` (after one line) when it cannot be had.
 */
export function node24(): string | undefined {
  const pkg = `node-linux-${process.arch}`
  const binary = (prefix: string) => path.join(prefix, 'node_modules', pkg, 'bin', 'node')
  const cache = path.join(repoRoot, '.cache', 'node24')
  if (!fs.existsSync(binary(cache))) {
    // Installed beside and renamed into place, so parallel test files never see half an install.
    const staging = `${cache}.${process.pid}`
    const npm = spawnSync(
      'npm',
      ['install', '--prefix', staging, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@24`],
      { encoding: 'utf8' },
    )
    if (npm.status === 0 && fs.existsSync(binary(staging))) {
      try {
        fs.renameSync(staging, cache)
      } catch {
        // another test file installed it first
      }
    }
    fs.rmSync(staging, { recursive: true, force: true })
  }
  const present = fs.existsSync(binary(cache))
  return prerequisite('tests on Node 24', present, `cannot install ${pkg}@24 from the npm registry into .cache/node24`)
    ? binary(cache)
    : undefined
}

/** pmem2's test-only counters (not in the typings): buffers unmap() would detach, and guards not yet finalized. */
export const internals = createRequire(import.meta.url)('../index.js').__pmem2Internals as {
  counts(mapping: unknown): { tracked: number; outstanding: number }
}
