#!/usr/bin/env node
// Packaging test (`npm run test:package`): what `npm install pmem2` gives a user on Linux x64.
//
// 1. Builds the release binary if it is missing, copies it into npm/linux-x64-gnu/ (as the
//    release workflow's `napi artifacts` does) and packs that platform package.
// 2. Packs the root package from a staged copy whose package.json gets the optionalDependencies
//    the release step (`napi pre-publish`) writes; the repository's package.json is not touched.
// 3. Installs both tarballs offline, with an empty npm cache, into a fresh project whose PATH has
//    no cargo or rustc, then maps a file through `require('pmem2')` and `import('pmem2')` in
//    child processes, writes, persists, and reads the bytes back from other processes.
// 4. Installs the root tarball alone and checks that loading fails naming the package to install.
//
// Plain Node, no dependencies. Prints `test:package: N passed, M failed` last.
//
// `--pack-only <dir>` (`npm run pack:local`) stops after steps 1 and 2 and leaves the two tarballs
// in <dir>, for using pmem2 from a clone before it is on the npm registry.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const { version } = rootPkg
const triple = 'linux-x64-gnu'
const platformPkg = `pmem2-${triple}`
const binaryName = `pmem2.${triple}.node`
const keep = process.env.PMEM2_TEST_PACKAGE_KEEP === '1'

let passed = 0
let failed = 0
function check(name, fn) {
  try {
    fn()
    passed++
    console.log(`ok - ${name}`)
  } catch (e) {
    failed++
    console.log(`not ok - ${name}\n  ${String(e && e.stack ? e.stack : e).replace(/\n/g, '\n  ')}`)
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message)
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  // Said in one line, and a failure where everything must be proven (CI).
  const line = `SKIPPED test:package: it checks the ${triple} package and needs Linux x64 (this is ${process.platform}-${process.arch})`
  const ci = !!process.env.CI && process.env.CI !== '0' && process.env.CI !== 'false'
  console.log(ci ? `${line} (CI is set: nothing may be skipped)` : line)
  process.exit(ci ? 1 : 0)
}

// Subprocess environment: no npm_* variables inherited from `npm run`, an empty npm cache, no
// network, and a PATH without cargo, rustc or rustup.
const packOnlyAt = process.argv.indexOf('--pack-only')
const packOnly = packOnlyAt >= 0 ? path.resolve(process.argv[packOnlyAt + 1] ?? 'dist') : undefined
if (packOnly) fs.mkdirSync(packOnly, { recursive: true })
const work = packOnly ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pmem2-test-package-'))
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
const toolDirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean)
const hasTool = (dir) => ['cargo', 'rustc', 'rustup'].some((t) => fs.existsSync(path.join(dir, t)))
const nodeBin = path.join(work, 'bin')
fs.mkdirSync(nodeBin)
fs.symlinkSync(process.execPath, path.join(nodeBin, 'node'))
const noRustPath = [nodeBin, ...toolDirs.filter((d) => !hasTool(d))].join(path.delimiter)
const npmCli = findNpmCli()
const userEnv = {
  ...baseEnv,
  PATH: noRustPath,
  npm_config_cache: path.join(work, 'npm-cache'),
  npm_config_offline: 'true',
  npm_config_update_notifier: 'false',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
}
delete userEnv.NAPI_RS_NATIVE_LIBRARY_PATH
delete userEnv.CARGO_HOME
delete userEnv.RUSTUP_HOME

function findNpmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(fs.realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  for (const c of candidates) if (c && /npm-cli\.js$/.test(c) && fs.existsSync(c)) return c
  throw new Error('cannot find npm-cli.js next to this node')
}
function npm(args, cwd, env = userEnv) {
  return execFileSync(process.execPath, [npmCli, ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}
function node(args, cwd, env = userEnv) {
  return spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8' })
}

console.log(`test:package: working in ${work}`)

// 1. The platform package.
const binary = path.join(root, binaryName)
const platformDir = path.join(root, 'npm', triple)
check('release binary is built', () => {
  if (!fs.existsSync(binary)) {
    console.log(`  ${binaryName} is missing: building it (napi build --platform --release)`)
    const napi = path.join(root, 'node_modules', '.bin', 'napi')
    execFileSync(napi, ['build', '--platform', '--release', '--no-const-enum'], { cwd: root, stdio: 'inherit' })
  }
  assert(fs.existsSync(binary), `${binaryName} was not built`)
  fs.copyFileSync(binary, path.join(platformDir, binaryName))
})

function pack(dir) {
  const out = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], dir, baseEnv))
  return { tarball: path.join(work, out[0].filename), files: out[0].files.map((f) => f.path).sort() }
}

let platformTgz
check(`${platformPkg} packs with its binary and os/cpu/libc`, () => {
  const pj = JSON.parse(fs.readFileSync(path.join(platformDir, 'package.json'), 'utf8'))
  assert(pj.name === platformPkg, `npm/${triple}/package.json names ${pj.name}`)
  assert(pj.version === version, `npm/${triple} is at ${pj.version}, the root at ${version} (run napi version)`)
  assert(pj.main === binaryName, `main is ${pj.main}`)
  assert(String(pj.os) === 'linux' && String(pj.cpu) === 'x64' && String(pj.libc) === 'glibc', 'os/cpu/libc')
  const { tarball, files } = pack(platformDir)
  assert(files.includes(binaryName) && files.includes('package.json'), `files: ${files.join(', ')}`)
  platformTgz = tarball
})

// 2. The root package, staged with the optionalDependencies of a release.
let rootTgz
check('root package packs without any binary, with optionalDependencies for every target', () => {
  const stage = path.join(work, 'stage')
  fs.mkdirSync(stage)
  for (const f of [...rootPkg.files, 'README.md', 'LICENSE']) {
    if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(stage, f), { recursive: true })
  }
  const staged = structuredClone(rootPkg)
  // `prepare` builds the addon in a clone; a user installing the tarball must not be asked to
  // approve (npm 11) or run it.
  delete staged.scripts.prepare
  staged.optionalDependencies = {}
  for (const t of rootPkg.napi.targets) staged.optionalDependencies[`${rootPkg.napi.packageName}-${abi(t)}`] = version
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(staged, null, 2) + '\n')
  const { tarball, files } = pack(stage)
  for (const f of ['index.js', 'index.cjs', 'index.mjs', 'index.d.ts', 'index.d.mts', 'package.json', 'README.md']) {
    assert(files.includes(f), `the root tarball lacks ${f}: ${files.join(', ')}`)
  }
  assert(!files.some((f) => f.endsWith('.node')), `the root tarball holds a binary: ${files.join(', ')}`)
  assert(staged.optionalDependencies[platformPkg] === version, 'no optionalDependency on the platform package')
  rootTgz = tarball
})

if (packOnly) {
  if (failed === 0) {
    console.log(`\nInstall both in your project:\n  npm install ${rootTgz} ${platformTgz}`)
  }
  process.exit(failed ? 1 : 0)
}

// The napi-rs platform name of a Rust target triple, for the targets this package lists.
function abi(target) {
  const m = /^(x86_64|aarch64)-unknown-linux-(gnu|musl)$/.exec(target)
  if (!m) throw new Error(`unexpected target ${target}`)
  return `linux-${m[1] === 'x86_64' ? 'x64' : 'arm64'}-${m[2]}`
}

function project(name, tarballs) {
  const dir = path.join(work, name)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }, null, 2))
  npm(['install', '--offline', '--no-audit', '--no-fund', ...tarballs], dir)
  return dir
}

// 3. A user's project.
const consumer = path.join(work, 'consumer')
check('install both tarballs offline with no cargo or rustc on PATH', () => {
  for (const tool of ['cargo', 'rustc']) {
    const which = spawnSync('which', [tool], { env: userEnv, encoding: 'utf8' })
    assert(which.status !== 0, `${tool} is still on PATH: ${which.stdout.trim()}`)
  }
  assert(rootTgz && platformTgz, 'tarballs missing')
  project('consumer', [rootTgz, platformTgz])
  const nm = path.join(consumer, 'node_modules')
  assert(fs.existsSync(path.join(nm, platformPkg, binaryName)), `${platformPkg} was not installed`)
  assert(!fs.existsSync(path.join(nm, 'pmem2', binaryName)), 'a binary sits inside the root package')
  for (const other of ['linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl']) {
    assert(!fs.existsSync(path.join(nm, `pmem2-${other}`)), `pmem2-${other} was installed on linux-x64-gnu`)
  }
})

// The same program as CommonJS and as an ES module: map the file, write, persist, unmap.
const body = `
const [file, text] = process.argv.slice(2)
const fd = fs.openSync(file, 'r+')
const config = new Config()
config.setRequiredStoreGranularity(Granularity.Page)
const mapping = mapNew(config, Source.fromFd(fd))
fs.closeSync(fd)
const n = mapping.buffer.write(text, 0)
mapping.persist(0, n)
const result = { size: mapping.size, granularity: mapping.storeGranularity, flushMethod: mapping.flushMethod }
mapping.unmap()
console.log(JSON.stringify(result))
`
const writers = {
  cjs: ["write.cjs", "const fs = require('node:fs')\nconst { Config, Granularity, mapNew, Source } = require('pmem2')\n" + body],
  esm: ["write.mjs", "import fs from 'node:fs'\nconst { Config, Granularity, mapNew, Source } = await import('pmem2')\n" + body],
}
for (const kind of ['cjs', 'esm']) {
  check(`${kind === 'cjs' ? "require('pmem2')" : "import('pmem2')"} maps a file, writes and persists; other processes read it back`, () => {
    const script = path.join(consumer, writers[kind][0])
    fs.writeFileSync(script, writers[kind][1])
    const file = path.join(consumer, `${kind}.bin`)
    fs.writeFileSync(file, Buffer.alloc(64 * 1024))
    const text = `pmem2 ${kind} ${process.pid} ${Date.now()}`
    const run = node([script, file, text], consumer)
    assert(run.status === 0, `the writer failed (${run.status}): ${run.stderr}`)
    const result = JSON.parse(run.stdout.trim().split('\n').pop())
    assert(result.size === 64 * 1024, `mapping size ${result.size}`)
    const readBack = node(['-e', `process.stdout.write(require('node:fs').readFileSync(process.argv[1]).subarray(0, ${text.length}))`, file], consumer)
    assert(readBack.status === 0 && readBack.stdout === text, `node read back ${JSON.stringify(readBack.stdout)} ${readBack.stderr}`)
    const dd = spawnSync('dd', [`if=${file}`, 'bs=1', `count=${text.length}`, 'status=none'], { encoding: 'utf8' })
    assert(dd.status === 0 && dd.stdout === text, `dd read back ${JSON.stringify(dd.stdout)} ${dd.stderr}`)
  })
}

check('the binary is loaded from the platform package', () => {
  const run = node(['-e', "require('pmem2'); console.log(Object.keys(require.cache).filter((k) => k.endsWith('.node')).join('\\n'))"], consumer)
  assert(run.status === 0, run.stderr)
  const loaded = run.stdout.trim()
  const expected = fs.realpathSync(path.join(consumer, 'node_modules', platformPkg, binaryName))
  assert(loaded === expected, `loaded ${JSON.stringify(loaded)}, expected ${expected}`)
})

// 4. The root package without its platform package.
check('without the platform package, require and import fail naming the package to install', () => {
  const dir = project('missing', [rootTgz])
  assert(!fs.existsSync(path.join(dir, 'node_modules', platformPkg)), `${platformPkg} was installed anyway`)
  const wanted = `npm install ${platformPkg}@${version}`
  const cjs = node(['-e', "try { require('pmem2') } catch (e) { console.log(JSON.stringify({ message: e.message, code: e.code })); process.exit(3) }"], dir)
  assert(cjs.status === 3, `require('pmem2') did not fail: ${cjs.status} ${cjs.stdout} ${cjs.stderr}`)
  const c = JSON.parse(cjs.stdout)
  assert(c.message.includes(wanted) && c.code === 'ERR_PMEM2_NATIVE_BINARY', `require's error: ${c.message}`)
  const esm = node(['--input-type=module', '-e', "try { await import('pmem2') } catch (e) { console.log(JSON.stringify({ message: e.message, code: e.code })); process.exit(3) }"], dir)
  assert(esm.status === 3, `import('pmem2') did not fail: ${esm.status} ${esm.stdout} ${esm.stderr}`)
  const m = JSON.parse(esm.stdout)
  assert(m.message.includes(wanted) && m.code === 'ERR_PMEM2_NATIVE_BINARY', `import's error: ${m.message}`)
  console.log(`  message: ${c.message}`)
})

if (!keep) fs.rmSync(work, { recursive: true, force: true })
else console.log(`kept ${work}`)
console.log(`test:package: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
