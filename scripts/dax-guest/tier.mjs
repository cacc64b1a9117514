#!/usr/bin/env node
// The real-DAX test tier (.ci/run): builds the test binaries on the host, then boots two guests
// (guest.mjs), one with an fsdax and a devdax NVDIMM and one with the same on an eADR platform,
// and runs in each, with no PMEM2_FORCE_GRANULARITY:
//   - the differential suite against Debian's libpmem2 (conformance.rs) with its fixtures on
//     fsdax and device DAX scenarios (PMEM2_TEST_DEVDAX);
//   - the Rust persist tests, and without eADR the mem tests and the ava data-path specs, TMPDIR
//     on fsdax (PMEM2_TEST_REAL_DAX names the granularity that gives there; PAGE cases use /tmp);
//   - dax.test.mjs: MAP_SYNC in smaps, device DAX from sysfs and from a second process, deep
//     flush under strace, `pmem2 info`.
// Then the power-cut loop (powercut.mjs) with --cuts N (default 20).
//
//   node scripts/dax-guest/tier.mjs [--cuts N] [--only plain|eadr|powercut]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { boot, ensurePackages, ROOT } from './guest.mjs'
import { powerCuts } from './powercut.mjs'

const RUST_TESTS = ['conformance', 'persist', 'mem']
const AVA_SPECS = ['__test__/mem.spec.ts', '__test__/mapping.spec.ts']

/** Builds the Rust test binaries and devdax-read; returns { name: path }. */
function build() {
  const out = execFileSync(
    'cargo',
    ['test', '-p', 'pmem2', '--locked', '--no-run', '--message-format=json', ...RUST_TESTS.flatMap((t) => ['--test', t])],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  )
  const bins = {}
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.executable && RUST_TESTS.includes(m.target.name)) bins[m.target.name] = m.executable
  }
  for (const t of RUST_TESTS) if (!bins[t]) throw new Error(`cargo built no ${t} test binary`)
  const reader = path.join(ROOT, '.cache/dax-guest/devdax-read')
  execFileSync('gcc', ['-O1', '-Wall', '-Werror', '-o', reader, path.join(ROOT, 'scripts/dax-guest/devdax-read.c')])
  bins.devdaxRead = reader
  return bins
}

/** The guest's job; `eadr` runs the eADR subset (no mem matrix, no ava: they add nothing there). */
function script(bins, eadr) {
  const q = (s) => `'${s}'`
  return `
set -u
fail=0
step() { echo "=== $*"; local t=$SECONDS; "$@"; local rc=$?; echo "=== $((SECONDS - t)) s, status $rc: $1"; [ $rc = 0 ] || fail=1; }
real=$([ "$DAX_EADR" = 1 ] && echo BYTE || echo CACHE_LINE)
mkdir -p "$DAX_FSDAX_DIR/tmp" /tmp/page-cache
export TMPDIR="$DAX_FSDAX_DIR/tmp" PMEM2_TEST_REAL_DAX=$real PMEM2_TEST_PAGE_CACHE_DIR=/tmp/page-cache
export PMEM2_TEST_DEVDAX="$DAX_DEVDAX" DAX_DEVDAX_READ=${q(bins.devdaxRead)} CI=${process.env.CI ?? ''}
echo "real DAX: fsdax $DAX_FSDAX_DEV on $DAX_FSDAX_DIR, device DAX $DAX_DEVDAX, eADR $DAX_EADR, expecting $real"
step ${q(bins.conformance)} --nocapture
step ${q(bins.persist)}
${eadr ? '' : `step ${q(bins.mem)}`}
${eadr ? '' : `step node node_modules/ava/entrypoints/cli.mjs ${AVA_SPECS.join(' ')}`}
step node --test scripts/dax-guest/dax.test.mjs
exit $fail
`
}

async function guestRun(mode, bins) {
  const start = Date.now()
  console.log(`\n--- guest: ${mode}`)
  const { done } = boot({ mode, command: script(bins, mode.startsWith('eadr')), env: {}, onLine: (l) => console.log(`  ${l}`), timeout: 2400 })
  const { status } = await done
  const seconds = ((Date.now() - start) / 1000).toFixed(0)
  console.log(`--- guest ${mode}: status ${status}, ${seconds} s`)
  return status === 0
}

async function main(argv) {
  let cuts = 20
  let only
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cuts') cuts = Number(argv[++i])
    else if (argv[i] === '--only') only = argv[++i]
    else throw new Error(`usage: tier.mjs [--cuts N] [--only plain|eadr|powercut] (unknown ${argv[i]})`)
  }
  const start = Date.now()
  ensurePackages()
  fs.mkdirSync(path.join(ROOT, '.cache/dax-guest'), { recursive: true })
  const results = []
  if (!only || only !== 'powercut') {
    const bins = build()
    for (const mode of ['fsdax,devdax', 'eadr,fsdax,devdax']) {
      if (only && (only === 'eadr') !== mode.startsWith('eadr')) continue
      results.push([mode, await guestRun(mode, bins)])
    }
  }
  if (!only || only === 'powercut') {
    const images = fs.mkdtempSync(path.join(ROOT, '.cache/dax-guest/powercut-'))
    const seed = Date.now() % 1_000_000
    console.log(`\n--- power cuts: ${cuts}, seed ${seed}`)
    const { stats, failures } = await powerCuts({ cuts, seed, images, say: (l) => console.log(`  ${l}`) })
    if (stats.cuts > 0 && stats.controlLosses === 0) failures.push('the control log never lost a record')
    console.log(
      `--- power cuts: ${stats.cuts} cuts, ${stats.verified} acknowledged records verified, control lost records in ` +
        `${stats.controlLosses} of ${stats.cuts} cuts${failures.length ? `\n  ${failures.join('\n  ')}` : ''}`,
    )
    results.push([`power cuts (seed ${seed})`, failures.length === 0])
    if (failures.length === 0) fs.rmSync(images, { recursive: true, force: true })
  }
  const failed = results.filter(([, ok]) => !ok)
  console.log(`\nreal-DAX tier: ${((Date.now() - start) / 60000).toFixed(1)} min`)
  for (const [name, ok] of results) console.log(`  ${ok ? 'ok    ' : 'FAILED'} ${name}`)
  console.log(`${results.length - failed.length} passed, ${failed.length} failed`)
  process.exitCode = failed.length ? 1 : 0
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`dax tier: ${e.stack}`)
  process.exit(1)
})
