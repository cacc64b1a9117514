// The part of the binding napi-rs cannot express, run once when the addon loads (see
// src/lib.rs). It receives the addon's exports and returns what the Rust side needs.
;(function install(exports) {
  'use strict'

  /** Every failure pmem2 reports: `code` is the PMEM2_E_* or errno name, `errno` the number libpmem2 returns. */
  class Pmem2Error extends Error {
    constructor(message, code, errno) {
      super(message)
      Object.defineProperty(this, 'name', { value: 'Pmem2Error', enumerable: false, configurable: true, writable: true })
      this.code = code
      this.errno = errno
    }
  }
  exports.Pmem2Error = Pmem2Error

  // `using mapping = mapNew(...)` unmaps at the end of the scope where the runtime has it.
  if (typeof Symbol.dispose === 'symbol') {
    Object.defineProperty(exports.Mapping.prototype, Symbol.dispose, {
      value: function dispose() {
        this.unmap()
      },
      writable: true,
      configurable: true,
    })
  }

  // index.d.ts declares numeric enums, whose values map back to their names in TypeScript;
  // napi-rs exports plain objects, so add the reverse entries here.
  for (const name of ['Granularity', 'Sharing']) {
    const values = exports[name]
    for (const key of Object.keys(values)) values[values[key]] = key
  }

  let maxBufferLength = 2 ** 32
  try {
    maxBufferLength = process.getBuiltinModule('buffer').constants.MAX_LENGTH
  } catch {
    // Node 20 has no process.getBuiltinModule; 2^32 is its limit on 64-bit hosts.
  }

  return { Pmem2Error, toBuffer: (arrayBuffer) => Buffer.from(arrayBuffer), maxBufferLength }
})
