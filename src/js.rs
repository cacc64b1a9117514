//! The few raw Node-API calls napi-rs does not wrap the way pmem2 needs: external
//! ArrayBuffers without napi-rs's silent-copy fallback, detaching them, and references that
//! outlive a call.
//!
//! # Safety
//! Every function takes a live `Env` (the current call's) and values created in it; napi
//! checks the handles and reports misuse as a status, which is turned into an error.
#![allow(unsafe_code)]

use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), format!("{what} failed")))
    }
}

/// A Node-API reference: strong (keeps the value alive) or weak (reads back `None` once the
/// value is collected). Must be released with [`JsRef::delete`]; `Drop` cannot, having no env.
pub struct JsRef(sys::napi_ref);

// SAFETY: a napi_ref is an opaque handle; it is only dereferenced on the JS thread through an
// `Env` passed to each method.
unsafe impl Send for JsRef {}

impl JsRef {
    pub fn new(env: &Env, value: sys::napi_value, strong: bool) -> Result<JsRef> {
        let mut raw = ptr::null_mut();
        // SAFETY: `value` is a live handle of this call's env.
        check(
            unsafe { sys::napi_create_reference(env.raw(), value, u32::from(strong), &mut raw) },
            "napi_create_reference",
        )?;
        Ok(JsRef(raw))
    }

    /// The referenced value, or `None` if a weak reference's value was collected.
    pub fn get(&self, env: &Env) -> Result<Option<sys::napi_value>> {
        let mut value = ptr::null_mut();
        // SAFETY: the reference was created in this env and not yet deleted (delete consumes it).
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), self.0, &mut value) },
            "napi_get_reference_value",
        )?;
        Ok((!value.is_null()).then_some(value))
    }

    pub fn delete(self, env: &Env) {
        // SAFETY: the reference is deleted exactly once, here, consuming it.
        unsafe { sys::napi_delete_reference(env.raw(), self.0) };
    }
}

/// Why an external ArrayBuffer could not be made.
pub enum ExternalError {
    /// The runtime forbids external buffers (Electron's V8 sandbox).
    NotAllowed,
    Other(Error),
}

/// Creates an ArrayBuffer over `[data, data+len)` without copying. `finalize` runs when the
/// buffer (or a buffer its contents were transferred to) is collected.
///
/// Unlike napi-rs's `ArrayBuffer::from_external`, a refusal is reported instead of silently
/// copying: a copy of persistent memory would lose every write.
///
/// # Safety
/// The memory must stay valid until `finalize` runs; `finalize` must keep it valid until then
/// (it receives ownership of whatever keeps the memory alive).
pub unsafe fn create_external_arraybuffer<T: 'static>(
    env: &Env,
    data: *mut u8,
    len: usize,
    keep_alive: T,
) -> std::result::Result<sys::napi_value, ExternalError> {
    unsafe extern "C" fn finalize<T>(_env: sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
        // SAFETY: `hint` is the Box leaked below and this finalizer runs exactly once.
        drop(unsafe { Box::from_raw(hint.cast::<T>()) });
    }
    if simulate_no_external_buffers() {
        return Err(ExternalError::NotAllowed);
    }
    let hint = Box::into_raw(Box::new(keep_alive));
    let mut value = ptr::null_mut();
    // SAFETY: the caller guarantees the memory outlives the buffer; `hint` is a live Box.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            data.cast(),
            len,
            Some(finalize::<T>),
            hint.cast(),
            &mut value,
        )
    };
    if status == sys::Status::napi_ok {
        return Ok(value);
    }
    // SAFETY: creation failed, so the finalizer will never run; reclaim the hint here.
    drop(unsafe { Box::from_raw(hint) });
    if status == sys::Status::napi_no_external_buffers_allowed {
        Err(ExternalError::NotAllowed)
    } else {
        Err(ExternalError::Other(Error::new(
            Status::from(status),
            "napi_create_external_arraybuffer failed",
        )))
    }
}

/// `PMEM2_SIMULATE_NO_EXTERNAL_BUFFERS=1` makes this process behave like a runtime that
/// refuses external buffers, so the refusal path can be tested outside Electron.
fn simulate_no_external_buffers() -> bool {
    std::env::var_os("PMEM2_SIMULATE_NO_EXTERNAL_BUFFERS").is_some_and(|v| v == "1")
}

/// Detaches an ArrayBuffer: its length and every view's length become 0. Returns `true` if
/// it was already detached, which for our buffers means its contents escaped through
/// `ArrayBuffer.prototype.transfer()`.
pub fn detach_arraybuffer(env: &Env, value: sys::napi_value) -> Result<bool> {
    let mut detached = false;
    // SAFETY: `value` is a live handle of this env.
    check(
        unsafe { sys::napi_is_detached_arraybuffer(env.raw(), value, &mut detached) },
        "napi_is_detached_arraybuffer",
    )?;
    if detached {
        return Ok(true);
    }
    // SAFETY: as above; the buffer is external, which V8 requires for detaching.
    check(
        unsafe { sys::napi_detach_arraybuffer(env.raw(), value) },
        "napi_detach_arraybuffer",
    )?;
    Ok(false)
}

/// `new ctor(...args)`.
pub fn new_instance(env: &Env, ctor: sys::napi_value, args: &[sys::napi_value]) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: `ctor` and `args` are live handles of this env.
    check(
        unsafe { sys::napi_new_instance(env.raw(), ctor, args.len(), args.as_ptr(), &mut value) },
        "napi_new_instance",
    )?;
    Ok(value)
}

/// `fun(...args)` with `undefined` as `this`.
pub fn call(env: &Env, fun: sys::napi_value, args: &[sys::napi_value]) -> Result<sys::napi_value> {
    let mut undefined = ptr::null_mut();
    let mut value = ptr::null_mut();
    // SAFETY: `fun` and `args` are live handles of this env.
    unsafe {
        check(sys::napi_get_undefined(env.raw(), &mut undefined), "napi_get_undefined")?;
        check(
            sys::napi_call_function(env.raw(), undefined, fun, args.len(), args.as_ptr(), &mut value),
            "napi_call_function",
        )?;
    }
    Ok(value)
}

/// Wraps a raw handle of this env as an `Unknown`.
pub fn unknown<'env>(env: &'env Env, value: sys::napi_value) -> Unknown<'env> {
    // SAFETY: `value` is a live handle of `env`; Unknown makes no claim about its type.
    unsafe { Unknown::from_raw_unchecked(env.raw(), value) }
}

/// The value as a bigint, or `None` if it is not of type bigint.
pub fn as_bigint(value: &Unknown) -> Result<Option<BigInt>> {
    if value.get_type()? != ValueType::BigInt {
        return Ok(None);
    }
    // SAFETY: the type was checked just above.
    unsafe { value.cast::<BigInt>() }.map(Some)
}

/// Which built-in error constructor [`create_error`] uses.
#[derive(Clone, Copy)]
pub enum ErrorClass {
    Type,
    Range,
}

/// A `TypeError` or `RangeError` with a `code` property, as Node's own argument errors.
pub fn create_error(env: &Env, class: ErrorClass, code: &str, message: &str) -> Result<sys::napi_value> {
    let code = env.create_string(code)?.raw();
    let message = env.create_string(message)?.raw();
    let mut value = ptr::null_mut();
    // SAFETY: `code` and `message` are live string handles of this env.
    let status = unsafe {
        match class {
            ErrorClass::Type => sys::napi_create_type_error(env.raw(), code, message, &mut value),
            ErrorClass::Range => sys::napi_create_range_error(env.raw(), code, message, &mut value),
        }
    };
    check(status, "napi_create_error")?;
    Ok(value)
}

/// The Rust half of a `#[napi]` class instance, or `None` if `value` is not one.
pub fn unwrap_class<'env, T>(env: &Env, value: &Unknown<'env>) -> Result<Option<ClassInstance<'env, T>>>
where
    T: JavaScriptClassExt + MaybeTypeTag + 'env,
{
    if value.get_type()? != ValueType::Object || !T::instance_of(env, value)? {
        return Ok(None);
    }
    // SAFETY: `instance_of` confirmed the object wraps a `T`; the conversion re-checks the
    // type tag and fails (rather than misreading memory) on a spoofed object.
    unsafe { value.cast::<ClassInstance<'env, T>>() }.map(Some)
}

/// The data pointer and length of a `Uint8Array` (or Buffer), or `None` if `value` is not one.
/// The pointer is valid until JavaScript runs again.
pub fn typed_bytes_ptr(env: &Env, value: &Unknown) -> Result<Option<(*const u8, usize)>> {
    let (mut kind, mut len, mut data) = (0, 0, ptr::null_mut());
    // SAFETY: `value` is a live handle of this env; napi checks that it is a typed array
    // (napi_invalid_arg otherwise); the unneeded outputs may be null.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            value.raw(),
            &mut kind,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok {
        return Ok(None);
    }
    if kind != sys::TypedarrayType::uint8_array && kind != sys::TypedarrayType::uint8_clamped_array {
        return Ok(None);
    }
    Ok(Some((
        data.cast::<u8>().cast_const(),
        if data.is_null() { 0 } else { len },
    )))
}

/// The value of a number argument with one Node-API call, or `None` if it is not a number
/// (the caller then takes the slower path that also accepts bigints and explains errors).
pub fn number_fast(env: &Env, value: &Unknown) -> Option<f64> {
    let mut n = 0.0;
    // SAFETY: `value` is a live handle of this env; a non-number only yields a status.
    let status = unsafe { sys::napi_get_value_double(env.raw(), value.raw(), &mut n) };
    (status == sys::Status::napi_ok).then_some(n)
}

/// A data-path operation called through [`create_fast_function`]: `run` receives the call's
/// first `ARGS` arguments (missing ones are `undefined`).
pub trait FastOp {
    const ARGS: usize;
    fn run(env: &Env, args: &[Unknown]) -> Result<()>;
}

const MAX_FAST_ARGS: usize = 6;

unsafe extern "C" fn fast_trampoline<F: FastOp>(
    raw_env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut argv = [ptr::null_mut(); MAX_FAST_ARGS];
    let mut argc = F::ARGS;
    // SAFETY: `info` is this callback's; `argv` has room for `argc` <= MAX_FAST_ARGS values.
    let status = unsafe {
        sys::napi_get_cb_info(
            raw_env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    let env = Env::from_raw(raw_env);
    let result = check(status, "napi_get_cb_info").and_then(|()| {
        let args: [Unknown; MAX_FAST_ARGS] = std::array::from_fn(|i| unknown(&env, argv[i]));
        // A panic must not unwind into Node; it becomes an exception.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| F::run(&env, &args[..F::ARGS])))
            .unwrap_or_else(|_| Err(Error::from_reason("pmem2: internal error (panic)")))
    });
    if let Err(err) = result {
        // SAFETY: `raw_env` is this callback's env.
        unsafe { JsError::from(err).throw_into(raw_env) };
    }
    ptr::null_mut() // undefined
}

/// A JavaScript function that calls `F::run` with as little overhead as Node-API allows: no
/// allocation, no borrow tracking (the data path takes no Rust references to JS objects).
pub fn create_fast_function<F: FastOp>(env: &Env, name: &str) -> Result<sys::napi_value> {
    assert!(F::ARGS <= MAX_FAST_ARGS);
    let mut value = ptr::null_mut();
    // SAFETY: `name` is valid for its length; the trampoline matches napi_callback.
    check(
        unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(fast_trampoline::<F>),
                ptr::null_mut(),
                &mut value,
            )
        },
        "napi_create_function",
    )?;
    Ok(value)
}
