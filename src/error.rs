//! Turning failures into JavaScript exceptions: `Pmem2Error` for everything the library
//! reports, `TypeError` and `RangeError` for bad arguments, as Node's own APIs do.
//!
//! Building an exception may run user JavaScript (a constructor reached through a modified
//! prototype chain, for instance), so callers build one only when they hold no lock and no
//! borrow. Where it can be avoided, nothing user-defined runs: `code` and `errno` are defined
//! as own properties (no setter on `Error.prototype` fires), and the result is handed to
//! napi-rs without reading any of its properties.

use crate::js::{self, ErrorClass, JsRef};
use napi::bindgen_prelude::*;

/// Per-runtime handles to the JavaScript half of the binding (`src/shim.js`), captured when
/// the addon loads, before user code could replace them.
pub struct Runtime {
    pub error_class: JsRef,
    /// `Buffer.allocUnsafeSlow`.
    pub alloc_buffer: JsRef,
    /// `buffer.constants.MAX_LENGTH` of this runtime.
    pub max_buffer_length: f64,
    /// Node's own text for each errno (`util.getSystemErrorMap()`), so messages read as fs
    /// errors do; empty where the runtime cannot tell.
    pub system_errors: std::collections::HashMap<i32, String>,
}

/// The `Runtime` of this env, installed at module load.
pub fn runtime(env: &Env) -> Result<&'static Runtime> {
    env.get_instance_data::<Runtime>()?
        .map(|r| &*r)
        .ok_or_else(|| Error::from_reason("pmem2 binding not initialised"))
}

/// A `Pmem2Error` with `code`, `errno` and `message`, ready to throw.
pub fn coded(env: &Env, code: &str, errno: i32, message: &str) -> Error {
    let build = || -> Result<Error> { Ok(js::error_from_value(env, coded_value(env, code, errno, message)?)) };
    build().unwrap_or_else(|e| e)
}

fn coded_value(env: &Env, code: &str, errno: i32, message: &str) -> Result<napi::sys::napi_value> {
    let ctor = runtime(env)?
        .error_class
        .get(env)?
        .ok_or_else(|| Error::from_reason("Pmem2Error collected"))?;
    let args = [
        env.create_string(message)?.raw(),
        env.create_string(code)?.raw(),
        env.create_int32(errno)?.raw(),
    ];
    js::new_instance(env, ctor, &args)
}

/// The exception for a core error: `RangeError` for a range outside the mapping,
/// `Pmem2Error` for everything else. An error about a file given by path carries `path` (and
/// `syscall` when a system call failed) as Node's fs errors do; a failed system call on it
/// reads like one: `ENOENT: no such file or directory, open '/x'`.
pub fn pmem2(env: &Env, err: pmem2::Error) -> Error {
    if err.kind() == pmem2::ErrorKind::LengthOutOfRange {
        return range(env, err.message());
    }
    let path = err.path().map(|p| p.to_string_lossy().into_owned());
    let message = match (err.kind(), &path, err.syscall()) {
        (pmem2::ErrorKind::Os(errno), Some(path), Some(syscall)) => {
            format!("{}: {}, {syscall} '{path}'", err.name(), system_error_text(env, errno))
        }
        _ => err.message().to_owned(),
    };
    let build = || -> Result<Error> {
        let value = coded_value(env, err.name(), err.code(), &message)?;
        if let Some(path) = &path {
            js::define_value(env, value, c"path", env.create_string(path)?.raw())?;
        }
        if let Some(syscall) = err.syscall() {
            js::define_value(env, value, c"syscall", env.create_string(syscall)?.raw())?;
        }
        Ok(js::error_from_value(env, value))
    };
    build().unwrap_or_else(|e| e)
}

/// What Node says for `errno` (`'no such file or directory'`), or the C library's text in
/// lower case where the runtime did not tell.
fn system_error_text(env: &Env, errno: i32) -> String {
    if let Some(text) = runtime(env).ok().and_then(|r| r.system_errors.get(&errno)) {
        return text.clone();
    }
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    text.split(" (os error").next().unwrap_or_default().to_lowercase()
}

fn builtin(env: &Env, class: ErrorClass, code: &str, message: &str) -> Error {
    match js::create_error(env, class, code, message) {
        Ok(value) => js::error_from_value(env, value),
        Err(e) => e,
    }
}

/// `TypeError` with code `ERR_INVALID_ARG_TYPE`.
pub fn type_error(env: &Env, message: &str) -> Error {
    builtin(env, ErrorClass::Type, "ERR_INVALID_ARG_TYPE", message)
}

/// `TypeError` with code `ERR_INVALID_ARG_VALUE`.
pub fn invalid_value(env: &Env, message: &str) -> Error {
    builtin(env, ErrorClass::Type, "ERR_INVALID_ARG_VALUE", message)
}

/// `RangeError` with code `ERR_OUT_OF_RANGE`.
pub fn range(env: &Env, message: &str) -> Error {
    builtin(env, ErrorClass::Range, "ERR_OUT_OF_RANGE", message)
}

/// A `RangeError` carrying a pmem2 `code` and libpmem2's `errno`, for a value out of the
/// range libpmem2 accepts that a user most likely took from another API.
pub fn range_coded(env: &Env, code: &str, errno: i32, message: &str) -> Error {
    let build = || -> Result<Error> {
        let value = js::create_error(env, ErrorClass::Range, code, message)?;
        js::define_value(env, value, c"errno", env.create_int32(errno)?.raw())?;
        Ok(js::error_from_value(env, value))
    };
    build().unwrap_or_else(|e| e)
}

/// Node's `RangeError` `ERR_BUFFER_TOO_LARGE`, with its wording.
pub fn buffer_too_large(env: &Env, max: f64) -> Error {
    builtin(
        env,
        ErrorClass::Range,
        "ERR_BUFFER_TOO_LARGE",
        &format!("Cannot create a Buffer larger than {max} bytes"),
    )
}

/// A new uninitialised Buffer of `len` bytes (at most the runtime's `MAX_LENGTH`), from the
/// runtime's own allocator: failing to get the memory is a `RangeError`, not an abort.
pub fn alloc_buffer(env: &Env, len: usize) -> Result<napi::sys::napi_value> {
    let alloc = runtime(env)?
        .alloc_buffer
        .get(env)?
        .ok_or_else(|| Error::from_reason("Buffer.allocUnsafeSlow collected"))?;
    let len = env.create_double(len as f64)?.raw();
    js::call(env, alloc, &[len])
}

/// Extension to convert core results at the call site: `core_call().or_throw(env)?`.
pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> Result<T>;
}

impl<T> OrThrow<T> for pmem2::Result<T> {
    fn or_throw(self, env: &Env) -> Result<T> {
        self.map_err(|e| pmem2(env, e))
    }
}
