//! Argument checks: JavaScript values to Rust integers, with Node-style errors.

use crate::error::{range, type_error};
use crate::js::{as_bigint, number_fast, unwrap_class};
use napi::bindgen_prelude::*;

fn describe(env: &Env, value: &Unknown) -> String {
    match (number_fast(env, value), value.get_type()) {
        (Some(n), _) => format!("{n}"),
        (_, Ok(t)) => format!("type {}", format!("{t:?}").to_lowercase()),
        _ => "an unknown value".into(),
    }
}

/// A non-negative integer up to 2^64-1: a safe-integer number or a bigint.
pub fn u64_arg(env: &Env, value: &Unknown, name: &str) -> Result<u64> {
    if let Some(n) = number_fast(env, value) {
        if n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&n) {
            return Ok(n as u64);
        }
        return Err(range(
            env,
            &format!(
                "The value of \"{name}\" is out of range. It must be a safe integer >= 0 or a bigint up to 2n ** 64n - 1n. Received {n}"
            ),
        ));
    }
    if let Some(big) = as_bigint(value)? {
        let (negative, v, lossless) = big.get_u64();
        if (negative && v != 0) || !lossless {
            return Err(range(
                env,
                &format!("The value of \"{name}\" is out of range. It must be >= 0n and <= 2n ** 64n - 1n"),
            ));
        }
        return Ok(v);
    }
    Err(type_error(
        env,
        &format!(
            "The \"{name}\" argument must be of type number or bigint. Received {}",
            describe(env, value)
        ),
    ))
}

/// As [`u64_arg`], then checked against the address space.
pub fn usize_arg(env: &Env, value: &Unknown, name: &str) -> Result<usize> {
    let v = u64_arg(env, value, name)?;
    usize::try_from(v).map_err(|_| {
        range(
            env,
            &format!("The value of \"{name}\" ({v}) does not fit in the address space"),
        )
    })
}

/// An integer number within `[min, max]` (fds, enum values, flag words).
pub fn int_arg(env: &Env, value: &Unknown, name: &str, min: i64, max: i64) -> Result<i64> {
    let Some(n) = number_fast(env, value) else {
        return Err(type_error(
            env,
            &format!(
                "The \"{name}\" argument must be of type number. Received {}",
                describe(env, value)
            ),
        ));
    };
    if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
        return Err(range(
            env,
            &format!(
                "The value of \"{name}\" is out of range. It must be an integer >= {min} and <= {max}. Received {n}"
            ),
        ));
    }
    Ok(n as i64)
}

/// A file descriptor number. Negative values pass (libpmem2 reports them as
/// `PMEM2_E_INVALID_FILE_HANDLE`); values beyond C `int` are a RangeError.
pub fn fd_arg(env: &Env, value: &Unknown) -> Result<i32> {
    Ok(int_arg(env, value, "fd", i32::MIN.into(), i32::MAX.into())? as i32)
}

/// The Rust half of a `#[napi]` class instance argument; a TypeError naming `name` and
/// `class` for anything else.
pub fn class_arg<'env, T>(env: &Env, value: &Unknown<'env>, name: &str, class: &str) -> Result<ClassInstance<'env, T>>
where
    T: JavaScriptClassExt + MaybeTypeTag + 'env,
{
    unwrap_class::<T>(env, value)?
        .ok_or_else(|| type_error(env, &format!("The \"{name}\" argument must be an instance of {class}")))
}
