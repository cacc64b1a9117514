'use strict'
// CommonJS entry (hand-written). index.js is the loader napi-rs generates: it loads
// ./pmem2.<platform>.node (a local build) or the platform package pmem2-<platform>. When neither
// loads, its error is npm-generic; this entry rethrows it naming the package to install, keeping
// the loader's error as `cause`. index.mjs imports this file, so ESM gets the same message.

const SUPPORTED = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl']

function isMusl() {
  try {
    return require('fs').readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // no /usr/bin/ldd: ask the process report (slow, but this is the failure path only)
  }
  try {
    const report = process.report.getReport()
    if (report.header && report.header.glibcVersionRuntime) return false
    return (report.sharedObjects || []).some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'))
  } catch {
    return false
  }
}

function explain(error) {
  const { version } = require('./package.json')
  const platform =
    process.platform === 'linux'
      ? `linux-${process.arch}-${isMusl() ? 'musl' : 'gnu'}`
      : `${process.platform}-${process.arch}`
  const pkg = `pmem2-${platform}`
  let message
  if (!SUPPORTED.includes(platform)) {
    message =
      `pmem2 has no native binary for ${platform}: prebuilt packages exist for ${SUPPORTED.join(', ')} ` +
      '(the core maps files with Linux interfaces only; see "Platforms" in the README).'
  } else {
    let installed = false
    try {
      require.resolve(`${pkg}/package.json`)
      installed = true
    } catch {
      // not installed
    }
    message = installed
      ? `pmem2 could not load its native binary from ${pkg}, which is installed: see the cause below. ` +
        `Reinstalling it may help: npm install ${pkg}@${version}`
      : `pmem2 could not find its native binary for ${platform}. Install the package ${pkg}: ` +
        `npm install ${pkg}@${version} (it is an optional dependency of pmem2; it is missing when ` +
        'optional dependencies were omitted, or when the lockfile was made on another platform, npm/cli#4828).'
  }
  const wrapped = new Error(message)
  wrapped.code = 'ERR_PMEM2_NATIVE_BINARY'
  wrapped.packageName = pkg
  wrapped.cause = error
  return wrapped
}

let binding
try {
  binding = require('./index.js')
} catch (error) {
  // Only a failure to find or load the binary is explained; anything else passes unchanged.
  if (!(error instanceof Error) || !/native binding/.test(error.message)) throw error
  throw explain(error)
}
// The generated loader's marker of which artifact it loaded is not pmem2's API: kept for the
// loader, hidden from Object.keys and the typings (scripts/typings.mjs).
const marker = Object.getOwnPropertyDescriptor(binding, '__napiBindingTarget')
if (marker && marker.configurable) Object.defineProperty(binding, '__napiBindingTarget', { enumerable: false })
module.exports = binding
