// Benchmarks pmem2 (Rust, and Node if bench/node.mjs exists) against Debian's libpmem2 on
// the same file, and prints a table of medians with ratios to libpmem2.
//
//   node bench/run.mjs [--rounds N] [--reps N] [--quick] [--file PATH]
//
// Every harness prints JSON lines {"impl":"c"|"rust"|"rust-fn"|"node","row":ROW,"median_ns":N}
// (lines with "meta" instead of "row" describe the configuration). Harnesses run alternately
// (c, rust, node, c, rust, node, ...) for --rounds rounds; the table shows the median over
// rounds of each harness's per-round median.
//
// Row names (a harness may omit rows it cannot do; the table shows "-"):
//   "map+unmap 16MiB"        map a 16 MiB file (granularity PAGE requested) and unmap it
//   "persist 64B CL"         store 64 B (memset) + persist, PMEM2_FORCE_GRANULARITY=CACHE_LINE
//   "persist 4KiB CL"        the same for 4 KiB
//   "persist 64KiB CL"       the same for 64 KiB
//   "persist 4KiB PAGE"      store 4 KiB + persist on the real (msync) PAGE mapping
//   "memcpy 256B flags=0"    memcpy into the CACHE_LINE mapping, flags 0
//   "memcpy 256B NT"         ... PMEM2_F_MEM_NONTEMPORAL
//   "memcpy 256B T"          ... PMEM2_F_MEM_TEMPORAL
//   "memcpy 4KiB flags=0" / "memcpy 4KiB NT" / "memcpy 4KiB T"
//   "memcpy 1MiB flags=0" / "memcpy 1MiB NT" / "memcpy 1MiB T"
//   "memset 4KiB"            memset into the CACHE_LINE mapping, flags 0
//   "plain memset 1MiB"      libc memset of 1 MiB of the mapping, no flush: machine baseline
//
// "rust" rows use the safe methods (map.persist, map.memcpy: bounds and protection checks);
// "rust-fn" rows use the function pointers (map.persist_fn() ...), as the C harness does.
// Writes bench/results.json. Targets: rust/c <= 1.05 on every row; NT 1 MiB memcpy
// bandwidth >= 0.9 x plain memset bandwidth.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes('--quick');
const rounds = Number(opt('--rounds', quick ? 1 : 5));
const reps = opt('--reps', quick ? '20' : '200');

const work = mkdtempSync(join(root, 'target', 'bench-'));
const file = opt('--file', join(work, 'bench.pmem'));

// 1. The C harness against Debian's libpmem2.
const cBin = join(work, 'libpmem2_bench');
execFileSync('gcc', ['-O2', '-o', cBin, join(here, 'libpmem2_bench.c'), '-lpmem2'], { stdio: 'inherit' });

// 2. The Rust bench binary (release, built by cargo; find the newest executable).
execFileSync('cargo', ['bench', '-p', 'pmem2', '--bench', 'ops', '--no-run'], { cwd: root, stdio: 'inherit' });
const deps = join(root, 'target', 'release', 'deps');
const rustBin = readdirSync(deps)
  .filter((f) => /^ops-[0-9a-f]+$/.test(f))
  .map((f) => join(deps, f))
  .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
if (!rustBin) throw new Error('cargo did not produce target/release/deps/ops-*');

// 3. The Node harness, if the binding provides one.
const nodeScript = join(here, 'node.mjs');
const harnesses = [
  ['c', cBin, ['--file', file, '--reps', reps]],
  ['rust', rustBin, ['--file', file, '--reps', reps]],
];
if (existsSync(nodeScript)) harnesses.push(['node', process.execPath, [nodeScript, '--file', file, '--reps', reps]]);

const results = {}; // row -> impl -> [medians per round]
const meta = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, bin, argv] of harnesses) {
    const out = execFileSync(bin, argv, { encoding: 'utf8', maxBuffer: 1 << 24 });
    for (const line of out.split('\n')) {
      if (!line.startsWith('{')) continue;
      const rec = JSON.parse(line);
      if (rec.meta) {
        meta[rec.impl] = rec.meta;
        continue;
      }
      ((results[rec.row] ??= {})[rec.impl] ??= []).push(rec.median_ns);
    }
    process.stderr.write(`round ${round + 1}/${rounds}: ${name} done\n`);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const impls = ['c', 'rust', 'rust-fn', 'node'].filter((i) => Object.values(results).some((r) => r[i]));
const table = [];
for (const [row, byImpl] of Object.entries(results)) {
  const entry = { row };
  for (const i of impls) if (byImpl[i]) entry[i] = median(byImpl[i]);
  for (const i of impls.filter((x) => x !== 'c')) if (entry[i] && entry.c) entry[`${i}/c`] = entry[i] / entry.c;
  table.push(entry);
}

const fmt = (ns) => (ns === undefined ? '-' : ns >= 1e5 ? `${(ns / 1e3).toFixed(1)} us` : `${ns.toFixed(1)} ns`);
const header = ['row', ...impls, ...impls.filter((x) => x !== 'c').map((i) => `${i}/c`)];
const lines = table.map((e) =>
  header.map((h) => (h === 'row' ? e.row : h.endsWith('/c') ? (e[h] ? e[h].toFixed(3) : '-') : fmt(e[h]))),
);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const show = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(show(header));
for (const l of lines) console.log(show(l));

// Bandwidth target: NT memcpy of 1 MiB versus plain memset of 1 MiB, per implementation.
const bw = (row, impl) => (results[row]?.[impl] ? MIB_BYTES / median(results[row][impl]) : undefined);
const MIB_BYTES = 1 << 20;
const targets = {};
for (const i of impls) {
  const nt = bw('memcpy 1MiB NT', i);
  const plain = bw('plain memset 1MiB', i) ?? bw('plain memset 1MiB', 'c');
  if (nt && plain) targets[i] = { nt_memcpy_GBps: nt, plain_memset_GBps: plain, ratio: nt / plain };
}
console.log('\nNT memcpy 1 MiB vs plain memset 1 MiB (GB/s):');
for (const [i, t] of Object.entries(targets))
  console.log(`  ${i}: ${t.nt_memcpy_GBps.toFixed(2)} vs ${t.plain_memset_GBps.toFixed(2)} -> ${t.ratio.toFixed(3)}`);
const worst = table.filter((e) => e['rust/c'] > 1.05).map((e) => `${e.row} (${e['rust/c'].toFixed(3)})`);
console.log(worst.length ? `\nrows above 1.05x libpmem2: ${worst.join(', ')}` : '\nall rust rows within 1.05x of libpmem2');

writeFileSync(
  join(here, 'results.json'),
  JSON.stringify({ date: new Date().toISOString(), rounds, reps: Number(reps), meta, table, bandwidth: targets }, null, 2) + '\n',
);
rmSync(work, { recursive: true, force: true });
