// The part of the binding napi-rs cannot express, run once when the addon loads (see
// src/lib.rs). It receives the addon's exports and returns what the Rust side needs.
//
// Everything it uses from the runtime is captured here, at load time: replacing
// `Object.defineProperty`, `WeakMap.prototype.get` or `Buffer.allocUnsafeSlow` later cannot
// change what pmem2 does.
;(function install(exports, dataPath) {
  'use strict'

  const { defineProperty, freeze, getOwnPropertyDescriptor } = Object
  const { apply, construct, ownKeys } = Reflect
  const { allocUnsafeSlow } = Buffer
  const NativeTypeError = TypeError
  const NativePromise = Promise
  const { allSettled } = Promise
  const { then } = Promise.prototype

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

  // index.d.ts declares numeric enums, whose values map back to their names in TypeScript;
  // napi-rs exports plain objects, so add the reverse entries here.
  for (const name of ['Granularity', 'Sharing']) {
    const values = exports[name]
    for (const key of Object.keys(values)) values[values[key]] = key
  }
  const granularityNames = freeze({ ...exports.Granularity })
  const sharingNames = freeze({ ...exports.Sharing })
  const protectionNames = freeze([
    [exports.PROT_READ, 'PROT_READ'],
    [exports.PROT_WRITE, 'PROT_WRITE'],
    [exports.PROT_EXEC, 'PROT_EXEC'],
  ])

  /** A TypeError with Node's `code`, defined as an own property like Node's own errors. */
  function typeError(message, code) {
    const error = new NativeTypeError(message)
    defineProperty(error, 'code', { value: code, enumerable: true, configurable: true, writable: true })
    return error
  }

  // The classes napi-rs makes neither refuse a call without `new` (`Config()` would wrap the
  // receiver) nor say how their objects are made. Each export becomes a wrapper that does,
  // sharing the native prototype (objects the binding makes, such as mapFile's Mapping, are
  // `instanceof` it) and forwarding the native statics (`Source.fromFd`) with the native class
  // as `this`, which napi-rs factories construct through.
  function wrapClass(Native, make) {
    const name = Native.name
    const Wrapper = {
      [name]: function (...args) {
        return make(new.target, args)
      },
    }[name]
    Wrapper.prototype = Native.prototype
    defineProperty(Native.prototype, 'constructor', { value: Wrapper, writable: true, configurable: true })
    for (const key of ownKeys(Native)) {
      const descriptor = getOwnPropertyDescriptor(Native, key)
      if (typeof descriptor.value !== 'function' || key === 'prototype') continue
      const native = descriptor.value
      descriptor.value = {
        [key](...args) {
          return apply(native, Native, args)
        },
      }[key]
      defineProperty(Wrapper, key, descriptor)
    }
    return Wrapper
  }
  const NativeConfig = exports.Config
  exports.Config = wrapClass(NativeConfig, (newTarget, args) => {
    if (newTarget === undefined) {
      throw typeError("Class constructor Config cannot be invoked without 'new'", 'ERR_CONSTRUCT_CALL_REQUIRED')
    }
    return construct(NativeConfig, args, newTarget)
  })
  exports.Source = wrapClass(exports.Source, () => {
    throw typeError(
      'Source has no public constructor: use Source.fromFd(fd) for an open file or Source.fromAnon(size) for anonymous memory',
      'ERR_ILLEGAL_CONSTRUCTOR',
    )
  })
  exports.Mapping = wrapClass(exports.Mapping, () => {
    throw typeError(
      'Mapping has no public constructor: mappings are made by mapFile(path, options) or mapFileAsync, ' +
        'mapNew(config, source) or mapAsync, and map(config) (the seed form)',
      'ERR_ILLEGAL_CONSTRUCTOR',
    )
  })
  const proto = exports.Mapping.prototype

  // The data path: plain native functions on a numeric handle (napi-rs class methods cost
  // ~300 ns a call; these ~60 ns). The handles live in this WeakMap only: user code can
  // neither read nor forge one, and a frozen Mapping works like any other.
  const handles = new WeakMap()
  // Own, fixed copies of the methods: replacing WeakMap.prototype.get later changes nothing.
  defineProperty(handles, 'get', { value: WeakMap.prototype.get })
  defineProperty(handles, 'set', { value: WeakMap.prototype.set })
  /** The handle of `mapping`, or a TypeError saying that `member` needs a Mapping as `this`. */
  const handle = (mapping, member) => {
    const known = handles.get(mapping)
    if (known !== undefined) return known
    const fresh = dataPath.handleOf(mapping) // a number for a Mapping, else nothing
    if (typeof fresh !== 'number') {
      // `persist` is reached as `.persist`, `[Symbol.dispose]` as is.
      const key = member.name[0] === '[' ? member.name : `.${member.name}`
      const text = member.getter
        ? `The Mapping.prototype${key} getter needs a Mapping as "this": read it as mapping${key}`
        : `Mapping.prototype${key} needs a Mapping as "this": call it as mapping${key}(...), ` +
          `or bind it (mapping${key}.bind(mapping))`
      throw typeError(text, 'ERR_INVALID_THIS')
    }
    handles.set(mapping, fresh)
    return fresh
  }
  const member = (name, getter = false) => freeze({ name, getter })

  // napi-rs's own members fail on a foreign `this` with V8's bare "Illegal invocation" or an
  // unwrap error; check the receiver first, as the data-path methods do.
  const getters = { __proto__: null }
  for (const key of ownKeys(proto)) {
    if (key === 'constructor' || typeof key !== 'string') continue
    const descriptor = getOwnPropertyDescriptor(proto, key)
    if (typeof descriptor.value === 'function') {
      const native = descriptor.value
      const which = member(key)
      descriptor.value = {
        [key](...args) {
          handle(this, which)
          return apply(native, this, args)
        },
      }[key]
    } else if (typeof descriptor.get === 'function') {
      const native = descriptor.get
      const which = member(key, true)
      getters[key] = native
      descriptor.get = getOwnPropertyDescriptor(
        {
          get [key]() {
            handle(this, which)
            return apply(native, this, [])
          },
        },
        key,
      ).get
    } else {
      continue
    }
    defineProperty(proto, key, descriptor)
  }
  const unmap = proto.unmap

  // persistAsync is remembered per mapping until it settles, so that disposal waits for it.
  const pendingPersists = new WeakMap()
  defineProperty(pendingPersists, 'get', { value: WeakMap.prototype.get })
  defineProperty(pendingPersists, 'set', { value: WeakMap.prototype.set })
  const persistAsync = proto.persistAsync
  const settled = (promises) => apply(allSettled, NativePromise, [promises])
  const passValue = (value) => value
  const passError = (error) => {
    throw error
  }
  defineProperty(proto, 'persistAsync', {
    value: {
      persistAsync(offset, length) {
        const promise = apply(persistAsync, this, [offset, length])
        const earlier = pendingPersists.get(this)
        pendingPersists.set(this, settled(earlier === undefined ? [promise] : [earlier, promise]))
        // Watching `promise` marks it handled: the caller gets a promise of its own, so a
        // rejection nobody handles is still reported ('unhandledRejection').
        return apply(then, promise, [passValue, passError])
      },
    }.persistAsync,
    writable: true,
    configurable: true,
  })

  // `using mapping = mapNew(...)` unmaps at the end of the scope where the runtime has it;
  // `await using` first waits for every persistAsync started on the mapping to settle.
  if (typeof Symbol.dispose === 'symbol') {
    const which = member('[Symbol.dispose]')
    defineProperty(proto, Symbol.dispose, {
      value: function dispose() {
        handle(this, which)
        apply(unmap, this, [])
      },
      writable: true,
      configurable: true,
    })
  }
  if (typeof Symbol.asyncDispose === 'symbol') {
    const which = member('[Symbol.asyncDispose]')
    defineProperty(proto, Symbol.asyncDispose, {
      value: async function asyncDispose() {
        handle(this, which)
        // A persistAsync started while waiting is waited for too.
        for (let seen; ; ) {
          const pending = pendingPersists.get(this)
          if (pending === seen) break
          seen = pending
          await pending
        }
        apply(unmap, this, [])
      },
      writable: true,
      configurable: true,
    })
  }

  // util.inspect(mapping): the state a user asks about first, without a try/catch.
  defineProperty(proto, Symbol.for('nodejs.util.inspect.custom'), {
    value: function inspect(depth, options, inspect) {
      if (handles.get(this) === undefined && typeof dataPath.handleOf(this) !== 'number') return this // the prototype
      const stylize = options && typeof options.stylize === 'function' ? (s) => options.stylize(s, 'special') : (s) => s
      if (depth < 0) return stylize('[Mapping]')
      const get = (name) => apply(getters[name], this, [])
      const name = stylize('Mapping')
      let state
      if (get('unmapped')) {
        state = { unmapped: true }
      } else {
        const protection = get('protection')
        const names = protectionNames.filter(([bit]) => (protection & bit) >>> 0 === bit).map(([, n]) => n)
        state = {
          size: get('size'),
          storeGranularity: granularityNames[get('storeGranularity')],
          flushMethod: get('flushMethod'),
          sharing: sharingNames[get('sharing')],
          protection: names.length === 0 ? 'PROT_NONE' : names.join(' | '),
          mapSync: get('mapSync'),
          address: `0x${get('address').toString(16)}`,
          unmapped: false,
        }
      }
      if (typeof inspect !== 'function') return `${name} ${JSON.stringify(state)}`
      return `${name} ${inspect(state, options)}`
    },
    writable: true,
    configurable: true,
  })

  const { persist, flush, drain, memcpy, memset, write, persistRanges, counts } = dataPath
  const m = {
    persist: member('persist'),
    flush: member('flush'),
    drain: member('drain'),
    memcpy: member('memcpy'),
    memmove: member('memmove'),
    memset: member('memset'),
    write: member('write'),
    persistRanges: member('persistRanges'),
  }
  const methods = {
    persist(offset, length) {
      persist(handle(this, m.persist), offset, length)
    },
    flush(offset, length) {
      flush(handle(this, m.flush), offset, length)
    },
    drain() {
      drain(handle(this, m.drain))
    },
    memcpy(destOffset, src, flags) {
      memcpy(handle(this, m.memcpy), destOffset, src, flags)
    },
    memmove(destOffset, src, flags) {
      memcpy(handle(this, m.memmove), destOffset, src, flags) // memcpy is memmove-safe
    },
    memset(destOffset, value, length, flags) {
      memset(handle(this, m.memset), destOffset, value, length, flags)
    },
    write(offset, data) {
      write(handle(this, m.write), offset, data)
    },
    persistRanges(ranges) {
      persistRanges(handle(this, m.persistRanges), ranges)
    },
  }
  for (const [name, fn] of Object.entries(methods)) {
    defineProperty(proto, name, { value: fn, writable: true, configurable: true })
  }

  // Introspection for pmem2's own tests; not part of the API (not in the typings, not
  // enumerable). `counts(mapping)` is `{ tracked, outstanding }`: the buffers unmap() would
  // detach, and those whose memory is not yet released by Node.
  defineProperty(exports, '__pmem2Internals', {
    value: freeze({
      counts(mapping) {
        const [tracked, outstanding] = counts(handle(mapping, member('counts')))
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

  // Node's text for each errno, so a failed open reads as fs says it:
  // `ENOENT: no such file or directory, open '/x'`.
  const systemErrors = []
  try {
    for (const [errno, [, text]] of process.getBuiltinModule('util').getSystemErrorMap()) {
      if (errno < 0) systemErrors.push([-errno, text])
    }
  } catch {
    // Node before 20.16 has no process.getBuiltinModule: the C library's text is used.
  }

  return { Pmem2Error, allocBuffer: (length) => allocUnsafeSlow(length), maxBufferLength, systemErrors }
})
