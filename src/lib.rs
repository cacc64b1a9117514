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

/// The `PROT_*` and `MEM_*` constants, exported by [`install`] rather than as `#[napi]` consts so
/// that `header.d.ts` can give them distinct types (napi-rs declares a const as `number`).
const CONSTANTS: [(&str, u32); 10] = [
    ("PROT_EXEC", pmem2::Protection::EXEC.bits()),
    ("PROT_READ", pmem2::Protection::READ.bits()),
    ("PROT_WRITE", pmem2::Protection::WRITE.bits()),
    ("PROT_NONE", pmem2::Protection::NONE.bits()),
    ("MEM_NODRAIN", pmem2::MemFlags::NODRAIN.bits()),
    ("MEM_NONTEMPORAL", pmem2::MemFlags::NONTEMPORAL.bits()),
    ("MEM_TEMPORAL", pmem2::MemFlags::TEMPORAL.bits()),
    ("MEM_WC", pmem2::MemFlags::WC.bits()),
    ("MEM_WB", pmem2::MemFlags::WB.bits()),
    ("MEM_NOFLUSH", pmem2::MemFlags::NOFLUSH.bits()),
];

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
    for (name, value) in CONSTANTS {
        exports.set_named_property(name, value)?;
    }

    let install: Function<FnArgs<(Object, Object)>, Object> = env.run_script(include_str!("shim.js"))?;
    let installed = install.call(FnArgs::from((exports, data_path::functions(&env)?)))?;
    let error_class: Unknown = installed.get_named_property("Pmem2Error")?;
    let alloc_buffer: Unknown = installed.get_named_property("allocBuffer")?;
    let max_buffer_length: f64 = installed.get_named_property("maxBufferLength")?;
    // `[errno, text]` pairs; errnos are positive here.
    let pairs: Object = installed.get_named_property("systemErrors")?;
    let mut system_errors = std::collections::HashMap::new();
    for i in 0..pairs.get_array_length()? {
        let pair: Object = pairs.get_element(i)?;
        let errno: i32 = pair.get_element(0)?;
        let text: String = pair.get_element(1)?;
        system_errors.insert(errno, text);
    }
    let runtime = error::Runtime {
        error_class: JsRef::new(&env, error_class.raw(), true)?,
        alloc_buffer: JsRef::new(&env, alloc_buffer.raw(), true)?,
        max_buffer_length,
        system_errors,
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
