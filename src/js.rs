//! The raw Node-API calls napi-rs does not wrap the way pmem2 needs: external buffers without
//! napi-rs's silent-copy fallback, detaching them, references that outlive a call, errors
//! whose properties are defined (no user setter runs), external-memory accounting, and the
//! data path's fast functions.
//!
//! None of these functions runs user JavaScript, except [`call`] and [`new_instance`], whose
//! callers pass functions captured from the runtime at load time.
//!
//! # Safety
//! Every function takes a live `Env` (the current call's, a finalizer's or a cleanup hook's)
//! and values created in it; Node-API checks the handles and reports misuse as a status,
//! which is turned into an error.
#![allow(unsafe_code)]

use napi::bindgen_prelude::*;
use napi::sys;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), format!("{what} failed")))
    }
}

/// Runs `f`, turning a panic into an error: no panic may unwind into Node.
pub fn no_unwind<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(Error::from_reason("pmem2: internal error (panic)")))
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

/// What owns external memory: told with an env when Node finalizes the buffer over it.
pub trait Finalize: Sized + 'static {
    fn finalize(self, env: &Env);
}

/// Why an external buffer could not be made.
pub enum ExternalError {
    /// The runtime forbids external buffers (Electron's V8 sandbox).
    NotAllowed,
    Other(Error),
}

/// A Node `Buffer` over `[data, data+len)` without copying, and its ArrayBuffer (`None` if
/// Node could not tell it, which leaves the buffer untrackable but safe). `owner` is
/// finalized when the backing store is freed: after the buffer, or every buffer its contents
/// were moved to (`transfer()`, a BYOB stream, a worker), is collected, or at env teardown.
///
/// Unlike napi-rs's `from_external`, a refusal is reported instead of silently copying: a copy
/// of persistent memory would lose every write. On failure `owner` is handed back.
///
/// # Safety
/// The memory must stay valid until `owner` is finalized.
pub unsafe fn create_external_buffer<T: Finalize>(
    env: &Env,
    data: *mut u8,
    len: usize,
    owner: T,
) -> std::result::Result<(sys::napi_value, Option<sys::napi_value>), (ExternalError, T)> {
    unsafe extern "C" fn finalize<T: Finalize>(
        raw_env: sys::napi_env,
        _data: *mut std::ffi::c_void,
        hint: *mut std::ffi::c_void,
    ) {
        // SAFETY: `hint` is the Box leaked below and Node calls this finalizer exactly once.
        let owner = unsafe { Box::from_raw(hint.cast::<T>()) };
        let env = Env::from_raw(raw_env);
        // A panic must not unwind into Node.
        let _ = catch_unwind(AssertUnwindSafe(|| owner.finalize(&env)));
    }
    if simulate_no_external_buffers() {
        return Err((ExternalError::NotAllowed, owner));
    }
    let hint = Box::into_raw(Box::new(owner));
    let mut buffer = ptr::null_mut();
    // SAFETY: the caller guarantees the memory outlives the buffer; `hint` is a live Box.
    let status = unsafe {
        sys::napi_create_external_buffer(
            env.raw(),
            len,
            data.cast(),
            Some(finalize::<T>),
            hint.cast(),
            &mut buffer,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: creation failed, so the finalizer will never run; reclaim the hint here.
        let owner = *unsafe { Box::from_raw(hint) };
        let why = if status == sys::Status::napi_no_external_buffers_allowed {
            ExternalError::NotAllowed
        } else {
            ExternalError::Other(Error::new(Status::from(status), "napi_create_external_buffer failed"))
        };
        return Err((why, owner));
    }
    let mut arraybuffer = ptr::null_mut();
    // SAFETY: `buffer` is a live Buffer of this env; unneeded outputs may be null.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            buffer,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut arraybuffer,
            ptr::null_mut(),
        )
    };
    // The buffer exists (and owns `owner`) even if this fails; the caller then cannot track it.
    Ok((buffer, (status == sys::Status::napi_ok).then_some(arraybuffer)))
}

/// `PMEM2_SIMULATE_NO_EXTERNAL_BUFFERS=1` makes this process behave like a runtime that
/// refuses external buffers, so the refusal path can be tested outside Electron.
fn simulate_no_external_buffers() -> bool {
    std::env::var_os("PMEM2_SIMULATE_NO_EXTERNAL_BUFFERS").is_some_and(|v| v == "1")
}

/// What [`detach_arraybuffer`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Detach {
    /// It was attached and is detached now: nothing reaches its memory through it any more.
    Detached,
    /// It was already detached: for our buffers, its contents were moved elsewhere.
    AlreadyDetached,
}

/// Detaches an ArrayBuffer: its length and every view's length become 0.
pub fn detach_arraybuffer(env: &Env, value: sys::napi_value) -> Result<Detach> {
    let mut detached = false;
    // SAFETY: `value` is a live handle of this env.
    check(
        unsafe { sys::napi_is_detached_arraybuffer(env.raw(), value, &mut detached) },
        "napi_is_detached_arraybuffer",
    )?;
    if detached {
        return Ok(Detach::AlreadyDetached);
    }
    // SAFETY: as above; the buffer is external, which V8 requires for detaching.
    check(
        unsafe { sys::napi_detach_arraybuffer(env.raw(), value) },
        "napi_detach_arraybuffer",
    )?;
    Ok(Detach::Detached)
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

/// Defines `name` on `object` as an own writable, enumerable, configurable data property,
/// as an assignment to a fresh object would, but without running setters on its prototypes.
pub fn define_value(env: &Env, object: sys::napi_value, name: &std::ffi::CStr, value: sys::napi_value) -> Result<()> {
    let attributes =
        sys::PropertyAttributes::writable | sys::PropertyAttributes::enumerable | sys::PropertyAttributes::configurable;
    let descriptor = sys::napi_property_descriptor {
        utf8name: name.as_ptr(),
        name: ptr::null_mut(),
        method: None,
        getter: None,
        setter: None,
        value,
        attributes,
        data: ptr::null_mut(),
    };
    // SAFETY: `object` and `value` are live handles of this env; `name` is NUL-terminated.
    check(
        unsafe { sys::napi_define_properties(env.raw(), object, 1, &descriptor) },
        "napi_define_properties",
    )
}

/// Which built-in error constructor [`create_error`] uses.
#[derive(Clone, Copy)]
pub enum ErrorClass {
    Type,
    Range,
}

/// A `TypeError` or `RangeError` with an own `code` property, as Node's own argument errors.
/// Unlike `napi_create_range_error` with a code, no setter of `code` on a prototype runs.
pub fn create_error(env: &Env, class: ErrorClass, code: &str, message: &str) -> Result<sys::napi_value> {
    let message = env.create_string(message)?.raw();
    let mut value = ptr::null_mut();
    // SAFETY: `message` is a live string handle of this env; a null code sets nothing.
    let status = unsafe {
        match class {
            ErrorClass::Type => sys::napi_create_type_error(env.raw(), ptr::null_mut(), message, &mut value),
            ErrorClass::Range => sys::napi_create_range_error(env.raw(), ptr::null_mut(), message, &mut value),
        }
    };
    check(status, "napi_create_error")?;
    define_value(env, value, c"code", env.create_string(code)?.raw())?;
    Ok(value)
}

/// A napi-rs error that throws (or rejects with) the JavaScript error `value` itself.
/// Reads nothing from it through `[[Get]]`, so no user getter runs.
pub fn error_from_value(env: &Env, value: sys::napi_value) -> Error {
    Error::from_unknown_without_coercion(unknown(env, value))
}

/// The Rust half of a `#[napi]` class instance, or `None` if `value` is not one.
///
/// Only the wrap and the type tag are looked at (private to Node-API): no `instanceof`,
/// which a `Symbol.hasInstance` or a Proxy's `getPrototypeOf` trap could answer by running
/// user code.
pub fn unwrap_class<'env, T>(_env: &Env, value: &Unknown<'env>) -> Result<Option<ClassInstance<'env, T>>>
where
    T: JavaScriptClassExt + MaybeTypeTag + 'env,
{
    if value.get_type()? != ValueType::Object {
        return Ok(None);
    }
    // SAFETY: the conversion checks that the object wraps a `T` (the wrap and the type tag)
    // and fails, rather than misreading memory, for any other object.
    Ok(unsafe { value.cast::<ClassInstance<'env, T>>() }.ok())
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

/// The writable bytes of a Buffer this call just created and has not exposed yet.
pub fn fresh_buffer_bytes(env: &Env, buffer: sys::napi_value) -> Result<(*mut u8, usize)> {
    let (mut data, mut len) = (ptr::null_mut(), 0);
    // SAFETY: `buffer` is a live handle of this env; napi checks that it is a Buffer.
    check(
        unsafe { sys::napi_get_buffer_info(env.raw(), buffer, &mut data, &mut len) },
        "napi_get_buffer_info",
    )?;
    Ok((data.cast(), if data.is_null() { 0 } else { len }))
}

/// The length in UTF-8 bytes of a string value, without copying it.
pub fn utf8_length(env: &Env, value: &Unknown) -> Result<usize> {
    let mut len = 0;
    // SAFETY: `value` is a live handle of this env; a null buffer asks for the length only.
    check(
        unsafe { sys::napi_get_value_string_utf8(env.raw(), value.raw(), ptr::null_mut(), 0, &mut len) },
        "napi_get_value_string_utf8",
    )?;
    Ok(len)
}

/// The value of a number argument with one Node-API call, or `None` if it is not a number
/// (the caller then takes the slower path that also accepts bigints and explains errors).
/// Never coerces: `valueOf` is not called.
pub fn number_fast(env: &Env, value: &Unknown) -> Option<f64> {
    let mut n = 0.0;
    // SAFETY: `value` is a live handle of this env; a non-number only yields a status.
    let status = unsafe { sys::napi_get_value_double(env.raw(), value.raw(), &mut n) };
    (status == sys::Status::napi_ok).then_some(n)
}

/// Tells V8 that `delta` bytes of memory outside its heap came (positive) or went (negative),
/// so it schedules garbage collection with them in mind.
pub fn adjust_external_memory(env: &Env, delta: i64) {
    let mut total = 0;
    // SAFETY: a plain counter update on this env's isolate.
    unsafe { sys::napi_adjust_external_memory(env.raw(), delta, &mut total) };
}

/// A data-path operation called through [`create_fast_function`]: `run` receives the call's
/// first `ARGS` arguments (missing ones are `undefined`) and returns nothing or a value.
pub trait FastOp {
    const ARGS: usize;
    fn run(env: &Env, args: &[Unknown]) -> Result<Option<sys::napi_value>>;
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
        no_unwind(|| F::run(&env, &args[..F::ARGS]))
    });
    match result {
        Ok(value) => value.unwrap_or(ptr::null_mut()), // null is undefined
        Err(err) => {
            // SAFETY: `raw_env` is this callback's env.
            unsafe { JsError::from(err).throw_into(raw_env) };
            ptr::null_mut()
        }
    }
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

/// `Object.keys(object)`: the own enumerable string keys (numbers as strings), as an array.
/// A Proxy's `ownKeys` and `getOwnPropertyDescriptor` traps may run.
pub fn own_enumerable_keys<'env>(env: &'env Env, object: &Object) -> Result<Object<'env>> {
    let mut keys = ptr::null_mut();
    // SAFETY: `object` is a live handle of this env; the filter and modes are Node-API constants.
    check(
        unsafe {
            sys::napi_get_all_property_names(
                env.raw(),
                object.raw(),
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut keys,
            )
        },
        "napi_get_all_property_names",
    )?;
    Ok(Object::from_raw(env.raw(), keys))
}
