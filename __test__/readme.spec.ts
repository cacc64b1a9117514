// Every ```ts block of README.md runs as it stands (and typechecks with --strict), and so does
// examples/usage.ts. A block imports from 'pmem2' (rewritten to this checkout's index.mjs) and may
// use /mnt/pmem/, rewritten to a fresh, empty temporary directory that is also its cwd: nothing
// is prepared, so every example creates or sizes the files it uses. Each runs as an ES module
// (.mts); a block with top-level await must say that it is an ES module, since it would not run
// as CommonJS.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { tempDir } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const register = path.join(root, 'node_modules', '@oxc-node', 'core', 'register.mjs')
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => ({
  code: m[1],
  line: readme.slice(0, m.index).split('\n').length,
}))

const base = tempDir()

/** An empty directory for the block, and the block's file outside it (so the directory stays empty). */
function prepare(code: string): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(base, 'example-'))
  const source = code
    .replaceAll("from 'pmem2'", `from ${JSON.stringify(path.join(root, 'index.mjs'))}`)
    .replaceAll('/mnt/pmem/', `${dir}/`)
  const file = path.join(fs.mkdtempSync(path.join(base, 'source-')), 'example.mts')
  fs.writeFileSync(file, source)
  return { dir, file }
}

/** Whether a block awaits outside any function (a statement starting at column 0). */
const topLevelAwait = (code: string) => /^(?:const|let|var)?[^\n(]*\bawait\b/m.test(code.replace(/^\s+.*$/gm, ''))

test('the README has runnable TypeScript examples for every Node API section', (t) => {
  t.true(blocks.length >= 8, `${blocks.length} blocks`)
  for (const name of ['mapFile', 'mapFileAsync', 'persistAsync', 'view(', 'flushMethod', 'using ']) {
    t.true(blocks.some((b) => b.code.includes(name)), name)
  }
})

for (const [i, block] of blocks.entries()) {
  test(`README.md example ${i + 1} (line ${block.line}) runs`, (t) => {
    if (topLevelAwait(block.code)) {
      t.regex(block.code, /ES module/, 'a block with top-level await says it must run as an ES module')
    }
    const { dir, file } = prepare(block.code)
    const r = spawnSync(process.execPath, ['--import', register, file], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    })
    t.is(r.status, 0, `${block.code}\n--- stderr:\n${r.stderr}`)
    t.log(r.stdout.trim().split('\n').join(' | '))
  })
}

test('the README examples typecheck with --strict against index.d.mts', (t) => {
  const files = blocks.map((b) => prepare(b.code).file)
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--target', 'es2022',
      '--module', 'esnext',
      '--moduleResolution', 'bundler',
      '--lib', 'es2022,esnext.disposable',
      '--types', 'node',
      '--typeRoots', path.join(root, 'node_modules', '@types'),
      '--skipLibCheck',
      ...files,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  )
  t.is(r.status, 0, r.stdout + r.stderr)
})

test('examples/usage.ts runs', (t) => {
  const r = spawnSync(process.execPath, ['--import', register, path.join(root, 'examples', 'usage.ts')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout, 'usage.ts: every export works\n')
})
