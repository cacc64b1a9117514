#!/usr/bin/env node
// `npm version <x.y.z>` runs this after it bumps package.json and before it commits and tags:
// it brings every other version in the repository to the new one and stages the files, so the
// release commit and its tag vX.Y.Z are consistent (release.yml checks it).
//   - npm/<platform>/package.json      (napi version)
//   - Cargo.toml, crates/pmem2/Cargo.toml, Cargo.lock
//   - index.js: the generated loader compares the platform package's version with its own
//   - CHANGELOG.md: the Unreleased section becomes the new version's
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' })
const napi = path.join(root, 'node_modules', '.bin', 'napi')

run(napi, ['version'])

for (const manifest of ['Cargo.toml', 'crates/pmem2/Cargo.toml']) {
  const file = path.join(root, manifest)
  const text = fs.readFileSync(file, 'utf8')
  // The first `version = "..."` line is the [package] one in both manifests.
  const next = text.replace(/^version = "[^"]*"/m, `version = "${version}"`)
  if (next === text && !text.includes(`version = "${version}"`)) throw new Error(`no version line in ${manifest}`)
  fs.writeFileSync(file, next)
}
run('cargo', ['update', '--workspace', '--offline'])

// Regenerates index.js (and index.d.ts) with the new version in the loader's version check.
run(napi, ['build', '--platform', '--no-const-enum'])
run(process.execPath, [path.join(root, 'scripts', 'typings.mjs')])

const changelog = path.join(root, 'CHANGELOG.md')
const today = new Date().toISOString().slice(0, 10)
const text = fs.readFileSync(changelog, 'utf8')
if (!text.includes(`## [${version}]`)) {
  if (!text.includes('## [Unreleased]')) throw new Error('CHANGELOG.md has no "## [Unreleased]" section')
  fs.writeFileSync(changelog, text.replace('## [Unreleased]', `## [Unreleased]\n\n## [${version}] - ${today}`))
}

run('git', ['add', 'npm', 'Cargo.toml', 'crates/pmem2/Cargo.toml', 'Cargo.lock', 'index.js', 'index.d.ts', 'CHANGELOG.md'])
