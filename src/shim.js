// The part of the binding napi-rs cannot express, run once when the addon loads (see
// src/lib.rs). It receives the addon's exports and returns what the Rust side needs.
//
// Everything it uses from the runtime is captured here, at load time: replacing
// `Object.defineProperty`, `WeakMap.prototype.get` or `Buffer.allocUnsafeSlow` later cannot
// change what pmem2 does.
;(function install(exports, dataPath) {
  'use strict'

  const { defineProperty, freeze } = Object
  const { allocUnsafeSlow } = Buffer

  /** Every failure pmem2 reports: `code` is the PMEM2_E_* or errno name, `errno` the number libpmem2 returns. */
  class Pmem2Error extends Error {
    constructor(message, code, errno) {
      super(message)
      // Defined, not assigned: a setter on a prototype must not see (or replace) them.
      defineProperty(this, 'name', { value: 'Pmem2Error', enumerable: false, configurable: true, writable: true })
      defineProperty(this, 'code', { value: code, enumerable: true, configurable: true, writable: true })
      defineProperty(this, 'errno', { value: errno, enumerable: true, configurable: true, writable: true })
    }
  }
  exports.Pmem2Error = Pmem2Error

  // `using mapping = mapNew(...)` unmaps at the end of the scope where the runtime has it.
  if (typeof Symbol.dispose === 'symbol') {
    defineProperty(exports.Mapping.prototype, Symbol.dispose, {
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

  // The data path: plain native functions on a numeric handle (napi-rs class methods cost
  // ~300 ns a call; these ~60 ns). The handles live in this WeakMap only: user code can
  // neither read nor forge one, and a frozen Mapping works like any other.
  const handles = new WeakMap()
  // Own, fixed copies of the methods: replacing WeakMap.prototype.get later changes nothing.
  defineProperty(handles, 'get', { value: WeakMap.prototype.get })
  defineProperty(handles, 'set', { value: WeakMap.prototype.set })
  const handle = (mapping) => {
    const known = handles.get(mapping)
    if (known !== undefined) return known
    const fresh = dataPath.handleOf(mapping) // throws for anything but a Mapping
    handles.set(mapping, fresh)
    return fresh
  }
  const { persist, flush, drain, memcpy, memset, write, persistRanges, counts } = dataPath
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
    defineProperty(exports.Mapping.prototype, name, { value: fn, writable: true, configurable: true })
  }

  // Introspection for pmem2's own tests; not part of the API (not in the typings, not
  // enumerable). `counts(mapping)` is `{ tracked, outstanding }`: the buffers unmap() would
  // detach, and those whose memory is not yet released by Node.
  defineProperty(exports, '__pmem2Internals', {
    value: freeze({
      counts(mapping) {
        const [tracked, outstanding] = counts(handle(mapping))
        return { tracked, outstanding }
      },
    }),
    enumerable: false,
  })

  let maxBufferLength = 2 ** 32
  try {
    maxBufferLength = process.getBuiltinModule('buffer').constants.MAX_LENGTH
  } catch {
    // Node 20 has no process.getBuiltinModule; 2^32 is its limit on 64-bit hosts.
  }

  return { Pmem2Error, allocBuffer: (length) => allocUnsafeSlow(length), maxBufferLength }
})
