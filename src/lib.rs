//! Node.js binding of the `pmem2` crate: argument checks and conversions only.
//!
//! Each concept has its file: `source.rs`, `config.rs`, `mapping.rs` (the class),
//! `region.rs` (the mapped range and when it may be unmapped), `data_path.rs` (persist and
//! copies, as plain functions on a `registry.rs` handle because napi-rs class methods cost
//! ~300 ns a call), `map_file.rs`, `tasks.rs` (libuv pool); `args.rs` checks arguments,
//! `error.rs` builds exceptions, `js.rs` holds the raw Node-API calls, and `shim.js` is the
//! little JavaScript napi-rs cannot express (`Pmem2Error`, `Symbol.dispose`, and the
//! data-path methods).
//!
//! No panic crosses into Node: every `#[napi]` item is `catch_unwind`, and the hand-made
//! callbacks (fast functions, finalizers, the cleanup hook, module init) catch their own.
#![deny(unsafe_code)]
#![deny(clippy::all)]
// napi-rs registers exports only outside cfg(test), so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod args;
mod config;
mod data_path;
mod error;
mod js;
mod map_file;
mod mapping;
mod platform;
mod region;
mod registry;
mod source;
mod tasks;

use js::JsRef;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `PMEM2_PROT_EXEC`: the mapping may be executed.
#[napi]
pub const PROT_EXEC: u32 = pmem2::Protection::EXEC.bits();
/// `PMEM2_PROT_READ`: the mapping may be read.
#[napi]
pub const PROT_READ: u32 = pmem2::Protection::READ.bits();
/// `PMEM2_PROT_WRITE`: the mapping may be written.
#[napi]
pub const PROT_WRITE: u32 = pmem2::Protection::WRITE.bits();
/// `PMEM2_PROT_NONE`: no access.
#[napi]
pub const PROT_NONE: u32 = 0;

/// `PMEM2_F_MEM_NODRAIN`: skip the final drain (fence).
#[napi]
pub const MEM_NODRAIN: u32 = 1;
/// `PMEM2_F_MEM_NONTEMPORAL`: use non-temporal stores.
#[napi]
pub const MEM_NONTEMPORAL: u32 = 2;
/// `PMEM2_F_MEM_TEMPORAL`: use temporal stores followed by flushes.
#[napi]
pub const MEM_TEMPORAL: u32 = 4;
/// `PMEM2_F_MEM_WC`: write-combining (non-temporal) stores.
#[napi]
pub const MEM_WC: u32 = 8;
/// `PMEM2_F_MEM_WB`: write-back (temporal) stores.
#[napi]
pub const MEM_WB: u32 = 16;
/// `PMEM2_F_MEM_NOFLUSH`: do not flush (implies NODRAIN).
#[napi]
pub const MEM_NOFLUSH: u32 = 32;

/// Runs `shim.js` and exports `errorCodes` when the addon loads.
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    js::no_unwind(|| install(exports, &env))
}

fn install(mut exports: Object, env: &Env) -> Result<()> {
    let env = *env;
    let mut codes = Object::new(&env)?;
    for &(name, code) in pmem2::ERROR_CODES {
        codes.set_named_property(name, code)?;
    }
    exports.set_named_property("errorCodes", codes)?;

    let install: Function<FnArgs<(Object, Object)>, Object> = env.run_script(include_str!("shim.js"))?;
    let installed = install.call(FnArgs::from((exports, data_path::functions(&env)?)))?;
    let error_class: Unknown = installed.get_named_property("Pmem2Error")?;
    let alloc_buffer: Unknown = installed.get_named_property("allocBuffer")?;
    let max_buffer_length: f64 = installed.get_named_property("maxBufferLength")?;
    let runtime = error::Runtime {
        error_class: JsRef::new(&env, error_class.raw(), true)?,
        alloc_buffer: JsRef::new(&env, alloc_buffer.raw(), true)?,
        max_buffer_length,
    };
    // Node does not free references an addon made when an environment (a Worker) goes away:
    // release them with the instance data, or every environment that loads pmem2 leaks them.
    env.set_instance_data(runtime, (), |ctx| {
        let error::Runtime {
            error_class,
            alloc_buffer,
            ..
        } = ctx.value;
        error_class.delete(&ctx.env);
        alloc_buffer.delete(&ctx.env);
    })
}
