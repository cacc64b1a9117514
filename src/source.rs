//! `Source`: what a mapping maps (an open file or anonymous memory).

use crate::args::{fd_arg, usize_arg};
use crate::error::OrThrow;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The data source of a mapping: an open file descriptor or anonymous memory.
///
/// ```ts
/// const fd = fs.openSync('data.bin', 'r+')
/// const source = Source.fromFd(fd)
/// console.log(source.size, source.alignment)
/// ```
#[napi]
pub struct Source {
    pub(crate) inner: pmem2::Source,
}

#[napi]
impl Source {
    /// A source for an open file descriptor (regular file or device DAX). The fd is not
    /// duplicated or closed; keep it open until `mapNew` returns.
    ///
    /// Throws `Pmem2Error` `PMEM2_E_INVALID_FILE_HANDLE` for a negative, closed or write-only
    /// fd and `PMEM2_E_INVALID_FILE_TYPE` for directories, FIFOs, sockets and other devices.
    #[napi(factory, catch_unwind, ts_args_type = "fd: number")]
    pub fn from_fd(env: Env, fd: Unknown) -> Result<Source> {
        let fd = fd_arg(&env, &fd)?;
        Ok(Source {
            inner: pmem2::Source::from_raw_fd(fd).or_throw(&env)?,
        })
    }

    /// An anonymous, zero-filled source of `size` bytes.
    #[napi(factory, catch_unwind, ts_args_type = "size: number | bigint")]
    pub fn from_anon(env: Env, size: Unknown) -> Result<Source> {
        let size = usize_arg(&env, &size, "size")?;
        Ok(Source {
            inner: pmem2::Source::from_anon(size),
        })
    }

    /// The size in bytes: the file size (read now), device DAX size, or anonymous size.
    #[napi(getter, catch_unwind)]
    pub fn size(&self, env: Env) -> Result<f64> {
        Ok(self.inner.size().or_throw(&env)? as f64)
    }

    /// `'regular'` or `'devdax'` for a file source, `null` for an anonymous one.
    #[napi(getter, catch_unwind, ts_return_type = "'regular' | 'devdax' | null")]
    pub fn file_type(&self) -> Option<&'static str> {
        self.inner.file_type().map(|t| match t {
            pmem2::FileType::Regular => "regular",
            pmem2::FileType::DeviceDax => "devdax",
        })
    }

    /// The alignment mapping offsets and lengths must respect (the page size for files).
    #[napi(getter, catch_unwind)]
    pub fn alignment(&self, env: Env) -> Result<f64> {
        Ok(self.inner.alignment().or_throw(&env)? as f64)
    }
}
