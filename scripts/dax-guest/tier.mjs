#!/usr/bin/env node
// The real-DAX test tier (.ci/run, `npm run test:dax`). Two lanes run side by side:
//
//   tests      builds on the host (the Rust test binaries with optimisation and debug
//              assertions, the conformance oracle, devdax-read.c, deep-flush.c), then boots
//              two guests (guest.mjs) and runs there, with no PMEM2_FORCE_GRANULARITY:
//              dax   fsdax + devdax NVDIMMs and a virtio-pmem device DAX: the differential suite
//                    against libpmem2 (conformance.rs, fixtures on fsdax, device DAX
//                    scenarios), the Rust persist tests, the mem tests but the CPU-dispatch
//                    overrides (env_*), the ava data-path specs (mem, mapping) but their
//                    page-cache-only tests, dax.test.mjs;
//              eadr  the same NVDIMMs on an eADR platform: the differential suite, the persist
//                    tests, the BYTE matrix of the mem tests, dax.test.mjs.
//              TMPDIR is on fsdax there: PMEM2_TEST_REAL_DAX names the granularity that gives
//              (CACHE_LINE, or BYTE with eADR), and the PAGE cases use a page-cache directory.
//   powercut   the power-cut loop (powercut.mjs) with --cuts N (default 20).
//
// Both lanes are CPU-bound emulators; side by side they keep two cores busy while each
// guest's boot is mostly single-threaded.
//
//   node scripts/dax-guest/tier.mjs [--cuts N] [--only dax|eadr|powercut] [--sequential]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { boot, ensurePackages, ROOT, SCRATCH, templates } from './guest.mjs'
import { powerCuts } from './powercut.mjs'

const RUST_TESTS = ['conformance', 'persist', 'mem']
/**
 * A cargo profile of its own for the guest's test binaries: optimised (debug builds run the
 * data-path loops many times slower under TCG) but with debug assertions and overflow checks,
 * and none of the release profile's LTO (slow to link, nothing to test).
 */
const PROFILE = [
  ['inherits', '"release"'],
  ['lto', 'false'],
  ['codegen-units', '16'],
  ['debug-assertions', 'true'],
  ['overflow-checks', 'true'],
  ['strip', '"none"'],
].flatMap(([k, v]) => ['--config', `profile.dax-tier.${k}=${v}`])
const AVA_SPECS = ['__test__/mem.spec.ts', '__test__/mapping.spec.ts']
/**
 * The tests of AVA_SPECS left out in the guest, by title: they map only page-cache files or
 * anonymous memory, or check arguments, so the host runs them as they would run here.
 */
const AVA_HOST_ONLY = [
  '*(PAGE)',
  'memmove*',
  'persistRanges*',
  'bad arguments*',
  'a read-only mapping refuses*',
  'deepFlush: PAGE*',
  'a page-cache file*',
  'finer granularity than the page cache*',
  'anonymous sources*',
  'wrong argument types*',
]

const elapsed = (start) => `${((Date.now() - start) / 1000).toFixed(0)} s`

/** Builds what the guests run that node does not: the test binaries, the oracle and two helpers. */
function build() {
  const out = execFileSync(
    'cargo',
    [
      'test',
      '-p',
      'pmem2',
      '--locked',
      '--no-run',
      '--profile',
      'dax-tier',
      ...PROFILE,
      '--message-format=json',
      ...RUST_TESTS.flatMap((t) => ['--test', t]),
    ],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  )
  const bins = {}
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.executable && RUST_TESTS.includes(m.target.name)) bins[m.target.name] = m.executable
  }
  for (const t of RUST_TESTS) if (!bins[t]) throw new Error(`cargo built no ${t} test binary`)
  fs.mkdirSync(SCRATCH, { recursive: true })
  const gcc = (out, src, ...libs) => execFileSync('gcc', ['-O1', '-Wall', '-Werror', '-o', out, path.join(ROOT, src), ...libs])
  bins.oracle = path.join(SCRATCH, 'pmem2-oracle')
  const libpmem2 = execFileSync('pkg-config', ['--cflags', '--libs', 'libpmem2'], { encoding: 'utf8' }).trim().split(/\s+/)
  gcc(bins.oracle, 'conformance/oracle.c', ...libpmem2)
  bins.devdaxRead = path.join(SCRATCH, 'devdax-read')
  gcc(bins.devdaxRead, 'scripts/dax-guest/devdax-read.c')
  bins.deepFlush = path.join(SCRATCH, 'deep-flush')
  gcc(bins.deepFlush, 'scripts/dax-guest/deep-flush.c', ...libpmem2)
  return bins
}

/** The job of a test guest; `eadr` runs the eADR set. */
function script(bins, eadr) {
  const q = (s) => `'${s}'`
  const ava = [
    'node node_modules/ava/entrypoints/cli.mjs --config scripts/dax-guest/ava.config.mjs',
    ...AVA_SPECS,
    ...AVA_HOST_ONLY.map((t) => `--match ${q(`!${t}`)}`),
  ].join(' ')
  return `
set -u
fail=0
step() { echo "=== $*"; local t=$SECONDS; "$@"; local rc=$?; echo "=== $((SECONDS - t)) s, status $rc: $1"; [ $rc = 0 ] || fail=1; }
real=$([ "$DAX_EADR" = 1 ] && echo BYTE || echo CACHE_LINE)
mkdir -p "$DAX_FSDAX_DIR/tmp" /tmp/page-cache
export TMPDIR="$DAX_FSDAX_DIR/tmp" PMEM2_TEST_REAL_DAX=$real PMEM2_TEST_PAGE_CACHE_DIR=/tmp/page-cache
export PMEM2_TEST_DEVDAX="$DAX_DEVDAX" PMEM2_TEST_ORACLE=${q(bins.oracle)}
export DAX_DEVDAX_READ=${q(bins.devdaxRead)} DAX_DEEP_FLUSH=${q(bins.deepFlush)}
export CI=${q(process.env.CI ?? '')}
echo "real DAX: fsdax $DAX_FSDAX_DEV on $DAX_FSDAX_DIR, device DAX $DAX_DEVDAX, eADR $DAX_EADR, expecting $real"
step ${q(bins.conformance)} --nocapture
step ${q(bins.persist)}
${eadr ? `step ${q(bins.mem)} --exact byte_matrix_forced_and_private` : `step ${q(bins.mem)} --skip env_`}
${eadr ? '' : `step ${ava}`}
step node --test scripts/dax-guest/dax.test.mjs
exit $fail
`
}

/** Boots a test guest; resolves to whether everything in it passed. */
async function testGuest(name, mode, bins, say) {
  const start = Date.now()
  say(`boot: ${mode}`)
  const { done } = boot({ mode, command: script(bins, mode.includes('eadr')), onLine: say, timeout: 1800 })
  const { status } = await done
  say(`status ${status}, ${elapsed(start)}`)
  return status === 0
}

async function main(argv) {
  let cuts = 20
  let only
  let sequential = false
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cuts') cuts = Number(argv[++i])
    else if (argv[i] === '--only') only = argv[++i]
    else if (argv[i] === '--sequential') sequential = true
    else throw new Error(`usage: tier.mjs [--cuts N] [--only dax|eadr|powercut] [--sequential] (unknown ${argv[i]})`)
  }
  const start = Date.now()
  ensurePackages()
  await templates() // once, before the lanes, which both need them
  const results = []
  const lane = (name) => (line) => console.log(`[${name}] ${line}`)

  const tests = async () => {
    const say = lane('build')
    const buildStart = Date.now()
    const bins = build()
    say(`built in ${elapsed(buildStart)}`)
    for (const [name, mode] of [
      ['dax', 'fsdax,devdax,virtio'],
      ['eadr', 'eadr,fsdax,devdax'],
    ]) {
      if (only && only !== name) continue
      results.push([`guest ${name} (${mode})`, await testGuest(name, mode, bins, lane(name))])
    }
  }

  const cutLane = async () => {
    const say = lane('powercut')
    fs.mkdirSync(SCRATCH, { recursive: true })
    const images = fs.mkdtempSync(path.join(SCRATCH, 'powercut-'))
    const seed = Date.now() % 1_000_000
    const cutStart = Date.now()
    say(`${cuts} cuts, seed ${seed}`)
    const { stats, failures } = await powerCuts({ cuts, seed, images, say })
    if (stats.cuts > 0 && stats.controlLosses === 0) failures.push('the control log never lost an acknowledged record')
    say(
      `${stats.cuts} cuts in ${elapsed(cutStart)}, ${stats.verified} acknowledged records verified, control lost ` +
        `records in ${stats.controlLosses} of ${stats.cuts} cuts${failures.length ? `\n  ${failures.join('\n  ')}` : ''}`,
    )
    results.push([`power cuts (seed ${seed})`, failures.length === 0])
    if (failures.length === 0) fs.rmSync(images, { recursive: true, force: true })
    else say(`images kept in ${path.relative(ROOT, images)}`)
  }

  const lanes = [
    ...(only === 'powercut' ? [] : [tests]),
    ...(only && only !== 'powercut' ? [] : [cutLane]),
  ]
  if (sequential) for (const l of lanes) await l()
  else await Promise.all(lanes.map((l) => l()))

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
