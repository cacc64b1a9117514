//! The data path of `Mapping` — `persist`, `flush`, `drain`, `memcpy`, `memmove`, `memset`,
//! `write` and `persistRanges` — as plain functions on a numeric handle (`registry.rs`).
//! `shim.js` installs them as `Mapping` methods and `header.d.ts` declares them: napi-rs class
//! methods cost about 300 ns a call here, these about 40 ns. Each is one call into Rust that
//! copies straight from the caller's bytes, with no intermediate allocation.
//!
//! The registry is looked up first and the region cloned out of it, so no borrow is held
//! while arguments are read (`persistRanges` reads elements, which can run getters) or
//! errors are built; the region's lock is held only around the core operation.

use crate::args::{int_arg, usize_arg};
use crate::error::{self, range, OrThrow};
use crate::js::{self, FastOp};
use crate::mapping::Mapping;
use crate::region::Region;
use crate::registry;
use napi::bindgen_prelude::*;
use napi::sys;
use pmem2::MemFlags;

/// The region behind the handle in `args[0]`.
fn region_of(env: &Env, args: &[Unknown]) -> Result<std::sync::Arc<Region>> {
    js::number_fast(env, &args[0])
        .and_then(registry::get)
        .ok_or_else(|| error::type_error(env, "the receiver is not a pmem2 Mapping"))
}

/// Runs `op` on the region behind the handle in `args[0]`.
fn on_mapping<R>(env: &Env, args: &[Unknown], op: impl FnOnce(&Region) -> Result<R>) -> Result<R> {
    let region = region_of(env, args)?;
    op(&region)
}

/// `offset` and `length` of `persist`, `flush` and `persistAsync`: an omitted (`undefined`)
/// offset is 0 and an omitted length means "to the end of the mapping" (`None`), resolved
/// against the live mapping by [`rest_of`].
pub(crate) fn range_args(env: &Env, offset: &Unknown, length: &Unknown) -> Result<(usize, Option<usize>)> {
    let offset = match offset.get_type()? {
        ValueType::Undefined => 0,
        _ => usize_arg(env, offset, "offset")?,
    };
    let length = match length.get_type()? {
        ValueType::Undefined => None,
        _ => Some(usize_arg(env, length, "length")?),
    };
    Ok((offset, length))
}

/// The length from `offset` to the end of the mapping; 0 past the end, where the core's range
/// check then reports the offset.
pub(crate) fn rest_of(mapping: &pmem2::Mapping, offset: usize) -> usize {
    mapping.size().saturating_sub(offset)
}

fn flags_arg(env: &Env, flags: &Unknown) -> Result<MemFlags> {
    let bits = match js::number_fast(env, flags) {
        Some(n) if n.fract() == 0.0 && (0.0..=63.0).contains(&n) => n as u32,
        _ if flags.get_type()? == ValueType::Undefined => 0,
        _ => int_arg(env, flags, "flags", 0, u32::MAX.into())? as u32,
    };
    MemFlags::from_bits(bits).ok_or_else(|| {
        range(
            env,
            &format!("The value of \"flags\" ({bits}) is not a combination of the MEM_* constants"),
        )
    })
}

/// Copies the bytes of `src` (a Uint8Array, possibly a view of this very mapping) to
/// `dest_offset`.
#[allow(unsafe_code)]
fn copy_in(env: &Env, region: &Region, dest_offset: usize, src: &Unknown, flags: MemFlags) -> Result<()> {
    let Some((ptr, len)) = js::typed_bytes_ptr(env, src)? else {
        return Err(error::type_error(
            env,
            "The \"src\" argument must be a Buffer or Uint8Array",
        ));
    };
    region
        .with_live(|m| {
            let (base, at) = (m.address() as usize, ptr as usize);
            if len > 0 && at >= base && at + len <= base + m.size() {
                return m.memmove_within(dest_offset, at - base, len, flags);
            }
            let src: &[u8] = if len == 0 {
                &[]
            } else {
                // SAFETY: napi reported `len` readable bytes at `ptr` for a Uint8Array of this
                // call; no JavaScript runs until the copy returns, and the bytes are not in this
                // mapping (checked above), so nothing writes them while they are borrowed.
                unsafe { std::slice::from_raw_parts(ptr, len) }
            };
            m.memmove(dest_offset, src, flags)
        })
        .or_throw(env)
}

struct Persist;
impl FastOp for Persist {
    const ARGS: usize = 3;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let (offset, length) = range_args(env, &args[1], &args[2])?;
        on_mapping(env, args, |r| {
            r.with_live(|m| m.persist(offset, length.unwrap_or_else(|| rest_of(m, offset))))
                .or_throw(env)
        })?;
        Ok(None)
    }
}

struct Flush;
impl FastOp for Flush {
    const ARGS: usize = 3;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let (offset, length) = range_args(env, &args[1], &args[2])?;
        on_mapping(env, args, |r| {
            r.with_live(|m| m.flush(offset, length.unwrap_or_else(|| rest_of(m, offset))))
                .or_throw(env)
        })?;
        Ok(None)
    }
}

struct Drain;
impl FastOp for Drain {
    const ARGS: usize = 1;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        on_mapping(env, args, |r| {
            r.with_live(|m| {
                m.drain();
                Ok(())
            })
            .or_throw(env)
        })?;
        Ok(None)
    }
}

struct Memcpy;
impl FastOp for Memcpy {
    const ARGS: usize = 4;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let dest_offset = usize_arg(env, &args[1], "destOffset")?;
        let flags = flags_arg(env, &args[3])?;
        on_mapping(env, args, |r| copy_in(env, r, dest_offset, &args[2], flags))?;
        Ok(None)
    }
}

struct Memset;
impl FastOp for Memset {
    const ARGS: usize = 5;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let dest_offset = usize_arg(env, &args[1], "destOffset")?;
        let value = int_arg(env, &args[2], "value", 0, 255)? as u8;
        let length = usize_arg(env, &args[3], "length")?;
        let flags = flags_arg(env, &args[4])?;
        on_mapping(env, args, |r| {
            r.with_live(|m| m.memset(dest_offset, value, length, flags))
                .or_throw(env)
        })?;
        Ok(None)
    }
}

struct Write;
impl FastOp for Write {
    const ARGS: usize = 3;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let offset = usize_arg(env, &args[1], "offset")?;
        on_mapping(env, args, |r| copy_in(env, r, offset, &args[2], MemFlags::empty()))?;
        Ok(None)
    }
}

struct PersistRanges;
impl FastOp for PersistRanges {
    const ARGS: usize = 2;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let ranges = &args[1];
        let not_an_array = || {
            error::type_error(
                env,
                "The \"ranges\" argument must be an array of [offset, length] pairs",
            )
        };
        if !ranges.is_array()? {
            return Err(not_an_array());
        }
        let array = ranges.coerce_to_object()?;
        // A Proxy of an array passes `Array.isArray` but has no length Node-API can read.
        let count = array.get_array_length().map_err(|_| not_an_array())?;
        // Never sized by `count`, which a sparse array sets at will: read element by element
        // (a getter may run, holding nothing) and grow as the elements prove to exist.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for i in 0..count {
            let pair: Unknown = array.get_element(i)?;
            let pair_array = pair.is_array()?.then(|| pair.coerce_to_object()).transpose()?;
            let Some(pair) = pair_array.filter(|p| p.get_array_length().is_ok_and(|n| n == 2)) else {
                return Err(error::type_error(
                    env,
                    &format!("ranges[{i}] must be an [offset, length] pair"),
                ));
            };
            let offset = usize_arg(env, &pair.get_element::<Unknown>(0)?, &format!("ranges[{i}][0]"))?;
            let length = usize_arg(env, &pair.get_element::<Unknown>(1)?, &format!("ranges[{i}][1]"))?;
            if pairs.try_reserve(1).is_err() {
                return Err(range(env, "out of memory for the ranges"));
            }
            pairs.push((offset, length));
        }
        on_mapping(env, args, |r| {
            r.with_live(|m| {
                for &(offset, length) in &pairs {
                    m.checked_range(offset, length)?;
                }
                for &(offset, length) in &pairs {
                    m.flush(offset, length)?;
                }
                m.drain();
                Ok(())
            })
            .or_throw(env)
        })?;
        Ok(None)
    }
}

/// `[tracked, outstanding]` of the region (`__pmem2Internals.counts` in `shim.js`).
struct Counts;
impl FastOp for Counts {
    const ARGS: usize = 1;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>> {
        let (tracked, outstanding) = region_of(env, args)?.counts();
        let mut out = env.create_array(2)?;
        out.set(0, tracked as f64)?;
        out.set(1, outstanding as f64)?;
        Ok(Some(out.raw()))
    }
}

/// The handle of a `Mapping` object, `undefined` for anything else (the shim then throws a
/// TypeError naming the method); the shim keeps it in a WeakMap keyed by the object.
fn handle_of(ctx: FunctionCallContext) -> Result<Option<f64>> {
    js::no_unwind(|| {
        let env = &*ctx.env;
        let value: Unknown = ctx.get(0)?;
        Ok(js::unwrap_class::<Mapping>(env, &value)?.map(|mapping| mapping.region().handle()))
    })
}

/// The functions `shim.js` turns into `Mapping` methods.
pub fn functions(env: &Env) -> Result<Object<'_>> {
    let mut fns = Object::new(env)?;
    fns.set_named_property(
        "handleOf",
        env.create_function_from_closure::<Unknown, _, _>("handleOf", handle_of)?,
    )?;
    fn add<F: FastOp>(env: &Env, fns: &mut Object, name: &str) -> Result<()> {
        let f: sys::napi_value = js::create_fast_function::<F>(env, name)?;
        fns.set_named_property(name, js::unknown(env, f))
    }
    add::<Persist>(env, &mut fns, "persist")?;
    add::<Flush>(env, &mut fns, "flush")?;
    add::<Drain>(env, &mut fns, "drain")?;
    add::<Memcpy>(env, &mut fns, "memcpy")?;
    add::<Memset>(env, &mut fns, "memset")?;
    add::<Write>(env, &mut fns, "write")?;
    add::<PersistRanges>(env, &mut fns, "persistRanges")?;
    add::<Counts>(env, &mut fns, "counts")?;
    Ok(fns)
}
