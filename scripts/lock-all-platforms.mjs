#!/usr/bin/env node
// Completes package-lock.json with the platform packages of optional native dependencies
// (`<pkg>-linux-arm64-gnu`, `<pkg>-darwin-x64`, …) that npm could not resolve when the lockfile was
// written. npm writes only the ones the registry it talks to can serve, and `npm ci` then fails
// everywhere with "Missing: <pkg>-<platform>@ from lock file"; on other platforms the tools that
// need them (the TypeScript loader of the tests) would not be installed at all (npm/cli#4828).
//
// The added entries carry the exact version the parent pins, `optional`, `dev`, and the os/cpu/libc
// napi-rs gives that platform name, so npm skips them without fetching on every other platform.
// They have no `integrity`: npm records it on the first install that fetches them.
//
// Run it after `npm install` changes the lockfile: node scripts/lock-all-platforms.mjs
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const lockPath = path.join(root, 'package-lock.json')
const lock = JSON.parse(fs.readFileSync(lockPath, 'utf8'))
const packages = lock.packages

// napi-rs platform names (cli: `parseTriple`, `create-npm-dirs`).
const CPU = { x64: 'x64', ia32: 'ia32', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', wasm32: 'wasm32' }
function platformFields(suffix) {
  if (suffix === 'wasm32-wasi') return { cpu: ['wasm32'] }
  if (suffix === 'darwin-universal') return { os: ['darwin'] }
  const m = /^(android|darwin|freebsd|linux|win32|openharmony)-(x64|ia32|arm64|arm|ppc64|s390x|riscv64|loong64)(?:-(gnu|musl|msvc|gnueabihf|musleabihf|eabi))?$/.exec(suffix)
  if (!m) return null
  const fields = { cpu: [CPU[m[2]]], os: [m[1]] }
  if (m[3] === 'gnu') fields.libc = ['glibc']
  if (m[3] === 'musl') fields.libc = ['musl']
  return fields
}

// Where npm would look for `name` required by the package at `key`: its own node_modules, then
// each enclosing node_modules up to the root. Returns the first existing entry's path, or the
// path next to the parent (where npm places a missing one).
function resolve(key, name) {
  const parts = key.split('node_modules/').slice(0, -1)
  for (let i = parts.length; i >= 1; i--) {
    const at = `${parts.slice(0, i).join('node_modules/')}node_modules/${name}`
    if (packages[at]) return at
  }
  return `${parts.join('node_modules/')}node_modules/${name}`
}

let added = 0
for (const [key, entry] of Object.entries(packages)) {
  if (!key.startsWith('node_modules/') || !entry.optionalDependencies) continue
  const parentName = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length)
  const siblings = Object.keys(entry.optionalDependencies)
    .map((name) => packages[resolve(key, name)])
    .filter(Boolean)
  for (const [name, spec] of Object.entries(entry.optionalDependencies)) {
    if (!name.startsWith(`${parentName}-`) || !/^\d+\.\d+\.\d+/.test(spec)) continue
    const at = resolve(key, name)
    if (packages[at]) continue
    const fields = platformFields(name.slice(parentName.length + 1))
    if (!fields) continue
    const sibling = siblings.find((s) => s.version === spec) || {}
    packages[at] = {
      version: spec,
      ...(fields.cpu ? { cpu: fields.cpu } : {}),
      ...(entry.dev ? { dev: true } : {}),
      ...(fields.libc ? { libc: fields.libc } : {}),
      ...(sibling.license ? { license: sibling.license } : {}),
      optional: true,
      ...(fields.os ? { os: fields.os } : {}),
      ...(sibling.engines && !fields.cpu?.includes('wasm32') ? { engines: sibling.engines } : {}),
    }
    added++
  }
}

// npm keeps `packages` sorted by path.
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b, 'en'))))
fs.writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n')
console.log(`lock-all-platforms: added ${added} platform package entries`)
