// The part of the binding napi-rs cannot express, run once when the addon loads (see
// src/lib.rs). It receives the addon's exports and returns what the Rust side needs.
;(function install(exports, dataPath) {
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

  // The data path: plain native functions on a numeric handle, cached on each Mapping under
  // a private symbol (napi-rs class methods cost ~300 ns a call; these ~60 ns).
  const kHandle = Symbol('pmem2.mapping')
  const handle = (mapping) => {
    const h = mapping[kHandle]
    if (h !== undefined) return h
    const fresh = dataPath.handleOf(mapping)
    Object.defineProperty(mapping, kHandle, { value: fresh })
    return fresh
  }
  const { persist, flush, drain, memcpy, memset, write, persistRanges } = dataPath
  const methods = {
    persist(offset, length) {
      persist(handle(this), offset, length)
    },
    flush(offset, length) {
      flush(handle(this), offset, length)
    },
    drain() {
      drain(handle(this))
    },
    memcpy(destOffset, src, flags) {
      memcpy(handle(this), destOffset, src, flags)
    },
    memmove(destOffset, src, flags) {
      memcpy(handle(this), destOffset, src, flags) // memcpy is memmove-safe
    },
    memset(destOffset, value, length, flags) {
      memset(handle(this), destOffset, value, length, flags)
    },
    write(offset, data) {
      write(handle(this), offset, data)
    },
    persistRanges(ranges) {
      persistRanges(handle(this), ranges)
    },
  }
  for (const [name, fn] of Object.entries(methods)) {
    Object.defineProperty(exports.Mapping.prototype, name, { value: fn, writable: true, configurable: true })
  }

  let maxBufferLength = 2 ** 32
  try {
    maxBufferLength = process.getBuiltinModule('buffer').constants.MAX_LENGTH
  } catch {
    // Node 20 has no process.getBuiltinModule; 2^32 is its limit on 64-bit hosts.
  }

  return { Pmem2Error, toBuffer: (arrayBuffer) => Buffer.from(arrayBuffer), maxBufferLength }
})
