//! `Mapping`, `map` (seed form) and `mapNew` (modern form).
//!
//! Memory safety towards JavaScript rests on one rule: mapped memory is reachable from
//! JavaScript only through external ArrayBuffers that this file creates and tracks, and
//! `unmap()` detaches every one of them before the file is released. If one escaped
//! (`ArrayBuffer.prototype.transfer()` moves its contents to a buffer we do not know), the
//! range is kept reserved with anonymous memory until the last such buffer is collected, so a
//! late access can neither fault nor reach a newer mapping at the same address.

use crate::args::{class_arg, usize_arg};
use crate::config::{Config, Granularity, Sharing};
use crate::error::{self, OrThrow};
use crate::js::{self, ExternalError, JsRef};
use crate::registry;
use crate::source::Source;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

enum State {
    Mapped(pmem2::Mapping),
    /// The file is released; the addresses stay reserved for escaped buffers.
    Retired(#[allow(dead_code)] pmem2::ReservedRange),
    Unmapped,
}

/// The mapping shared by the JavaScript object and every buffer over it (their finalizers
/// hold an `Arc`), so the memory lives until the last of them is gone.
pub(crate) struct Region {
    state: RwLock<State>,
    /// External buffers not yet finalized; when the last one goes after `unmap()`, a
    /// retired range is released even if the Mapping object itself lives on.
    buffers: AtomicUsize,
}

/// Owned by each external buffer's finalizer: keeps the region alive and counts the buffer.
struct BufferGuard(Arc<Region>);

impl BufferGuard {
    fn new(region: &Arc<Region>) -> BufferGuard {
        region.buffers.fetch_add(1, Ordering::SeqCst);
        BufferGuard(Arc::clone(region))
    }
}

impl Drop for BufferGuard {
    fn drop(&mut self) {
        if self.0.buffers.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut state = self.0.state.write().unwrap_or_else(|e| e.into_inner());
            if matches!(*state, State::Retired(_)) {
                *state = State::Unmapped; // drops the ReservedRange: munmap
            }
        }
    }
}

impl Region {
    /// Runs `f` on the live mapping; `PMEM2_E_MAPPING_NOT_FOUND` after `unmap()`.
    pub(crate) fn with_live<R>(&self, f: impl FnOnce(&pmem2::Mapping) -> pmem2::Result<R>) -> pmem2::Result<R> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Mapped(map) => f(map),
            _ => Err(pmem2::Error::new(
                pmem2::ErrorKind::MappingNotFound,
                "the mapping was unmapped; it can no longer be used",
            )),
        }
    }
}

/// A mapped range of a file or of anonymous memory.
///
/// ```ts
/// const mapping = mapNew(config, source)
/// mapping.buffer.write('hello', 0)
/// mapping.persist(0, 5)
/// mapping.unmap()
/// ```
#[napi(custom_finalize)]
pub struct Mapping {
    region: Arc<Region>,
    /// The data path's handle for `region` (see `registry.rs`).
    handle: f64,
    /// The JavaScript objects over the mapping. Interior mutability keeps every method `&self`,
    /// so they all work while an async task borrows the object.
    views: RefCell<Views>,
}

#[derive(Default)]
struct Views {
    /// Strong reference to the Buffer returned by `buffer`, so it is the same object each time.
    buffer: Option<JsRef>,
    /// Weak references to every external ArrayBuffer over this mapping.
    arraybuffers: Vec<JsRef>,
}

impl Mapping {
    pub(crate) fn new(map: pmem2::Mapping) -> Mapping {
        let state = RwLock::new(State::Mapped(map));
        let region = Arc::new(Region {
            state,
            buffers: AtomicUsize::new(0),
        });
        Mapping {
            handle: registry::insert(Arc::clone(&region)),
            region,
            views: RefCell::default(),
        }
    }

    /// Runs `f` on the live mapping, or throws `PMEM2_E_MAPPING_NOT_FOUND` after `unmap()`.
    pub(crate) fn live<R>(&self, env: &Env, f: impl FnOnce(&pmem2::Mapping) -> pmem2::Result<R>) -> Result<R> {
        self.region.with_live(f).or_throw(env)
    }

    pub(crate) fn handle(&self) -> f64 {
        self.handle
    }

    pub(crate) fn region(&self) -> Arc<Region> {
        Arc::clone(&self.region)
    }

    /// An external ArrayBuffer over `[offset, offset+len)` of the live mapping, tracked for
    /// detaching.
    #[allow(unsafe_code)]
    fn external_arraybuffer(&self, env: &Env, offset: usize, len: usize) -> Result<napi::sys::napi_value> {
        let ptr = self.live(env, |m| m.checked_range(offset, len))?;
        // SAFETY: the range is inside the live mapping; the buffer's finalizer owns a guard of
        // the region, which keeps the range mapped (or reserved, after unmap) until it runs.
        match unsafe { js::create_external_arraybuffer(env, ptr, len, BufferGuard::new(&self.region)) } {
            Ok(ab) => {
                let mut views = self.views.borrow_mut();
                // Forget buffers that were collected (views come and go).
                let (live, collected): (Vec<_>, Vec<_>) = std::mem::take(&mut views.arraybuffers)
                    .into_iter()
                    .partition(|r| matches!(r.get(env), Ok(Some(_))));
                collected.into_iter().for_each(|r| r.delete(env));
                views.arraybuffers = live;
                views.arraybuffers.push(JsRef::new(env, ab, false)?);
                Ok(ab)
            }
            Err(ExternalError::NotAllowed) => Err(error::coded(
                env,
                "ERR_EXTERNAL_BUFFERS_NOT_ALLOWED",
                pmem2::ErrorKind::NotSupported.code(),
                "this runtime does not allow external buffers (e.g. Electron's V8 sandbox), so mapped memory \
                 cannot be exposed as a Buffer without copying; use mapping.read(offset, length) and \
                 mapping.write(offset, data)",
            )),
            Err(ExternalError::Other(e)) => Err(e),
        }
    }
}

impl Mapping {
    /// A Buffer over `[offset, offset+len)`, after the checks `buffer` and `view` share.
    fn window(&self, env: &Env, offset: usize, len: usize, what: &str) -> Result<napi::sys::napi_value> {
        self.live(env, |m| {
            m.checked_range(offset, len)?;
            let rw = pmem2::Protection::READ | pmem2::Protection::WRITE;
            if !m.protection().contains(rw) {
                return Err(pmem2::Error::new(
                    pmem2::ErrorKind::NoAccess,
                    "a Buffer over the mapping needs PROT_READ | PROT_WRITE: JavaScript cannot make a Buffer \
                     read-only and a store to a read-only page would kill the process; use mapping.read(offset, length)",
                ));
            }
            Ok(())
        })?;
        let runtime = error::runtime(env)?;
        if len as f64 > runtime.max_buffer_length {
            return Err(error::range(
                env,
                &format!(
                    "{what} ({len} bytes) is larger than the largest Buffer this runtime allows ({}); \
                     use mapping.view(offset, length) for a smaller window",
                    runtime.max_buffer_length
                ),
            ));
        }
        let ab = self.external_arraybuffer(env, offset, len)?;
        let to_buffer = runtime
            .to_buffer
            .get(env)?
            .ok_or_else(|| Error::from_reason("toBuffer collected"))?;
        js::call(env, to_buffer, &[ab])
    }
}

impl ObjectFinalize for Mapping {
    fn finalize(self, env: Env) -> Result<()> {
        registry::remove(self.handle);
        // The region itself is dropped with the last Arc (here, or in a buffer's finalizer).
        let views = self.views.into_inner();
        if let Some(buffer) = views.buffer {
            buffer.delete(&env);
        }
        for ab in views.arraybuffers {
            ab.delete(&env);
        }
        Ok(())
    }
}

#[napi]
impl Mapping {
    /// The start address (2 MiB aligned) as a bigint.
    #[napi(getter)]
    pub fn address(&self, env: Env) -> Result<BigInt> {
        self.live(&env, |m| Ok(BigInt::from(m.address() as u64)))
    }

    /// The mapped length in bytes.
    #[napi(getter)]
    pub fn size(&self, env: Env) -> Result<f64> {
        self.live(&env, |m| Ok(m.size() as f64))
    }

    /// The effective store granularity: what `persist` does to make stores durable.
    #[napi(getter)]
    pub fn store_granularity(&self, env: Env) -> Result<Granularity> {
        self.live(&env, |m| {
            Ok(match m.store_granularity() {
                pmem2::Granularity::Byte => Granularity::Byte,
                pmem2::Granularity::CacheLine => Granularity::CacheLine,
                pmem2::Granularity::Page => Granularity::Page,
            })
        })
    }

    /// Whether the kernel granted MAP_SYNC (a DAX file).
    #[napi(getter)]
    pub fn map_sync(&self, env: Env) -> Result<bool> {
        self.live(&env, |m| Ok(m.map_sync()))
    }

    /// The sharing mode the mapping was made with.
    #[napi(getter)]
    pub fn sharing(&self, env: Env) -> Result<Sharing> {
        self.live(&env, |m| {
            Ok(match m.sharing() {
                pmem2::Sharing::Shared => Sharing::Shared,
                pmem2::Sharing::Private => Sharing::Private,
            })
        })
    }

    /// The protection the mapping was made with (`PROT_*` bits).
    #[napi(getter)]
    pub fn protection(&self, env: Env) -> Result<u32> {
        self.live(&env, |m| Ok(m.protection().bits()))
    }

    /// How `persist` makes stores durable: `'clwb'`, `'clflushopt'` or `'clflush'` (CACHE_LINE),
    /// `'msync'` (PAGE), or `'none'` (BYTE: a fence suffices).
    #[napi(
        getter,
        ts_return_type = "'clwb' | 'clflushopt' | 'clflush' | 'dc cvap' | 'dc cvac' | 'msync' | 'none'"
    )]
    pub fn flush_method(&self, env: Env) -> Result<&'static str> {
        self.live(&env, |m| {
            Ok(match m.store_granularity() {
                pmem2::Granularity::Page => "msync",
                pmem2::Granularity::CacheLine => pmem2::persist::flush_instruction().name(),
                pmem2::Granularity::Byte => "none",
            })
        })
    }

    /// Like `persist`, on the libuv thread pool: PAGE persists (msync) do not block the event
    /// loop. Rejects with the same `Pmem2Error`s.
    #[napi(
        ts_args_type = "offset: number | bigint, length: number | bigint",
        ts_return_type = "Promise<void>"
    )]
    pub fn persist_async(
        &self,
        env: Env,
        offset: Unknown,
        length: Unknown,
    ) -> Result<AsyncTask<crate::tasks::PersistTask>> {
        let (offset, length) = (usize_arg(&env, &offset, "offset")?, usize_arg(&env, &length, "length")?);
        Ok(AsyncTask::new(crate::tasks::PersistTask::new(
            self.region(),
            offset,
            length,
        )))
    }

    /// A zero-copy Buffer over the mapped bytes (the same Buffer on every access).
    ///
    /// Throws `PMEM2_E_NO_ACCESS` for a mapping without `PROT_WRITE` (a store through it
    /// would kill the process, and JavaScript has no read-only Buffer: use `read()`), and
    /// `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED` where the runtime forbids external memory.
    #[napi(getter, ts_return_type = "Buffer")]
    pub fn buffer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        if let Some(cached) = &self.views.borrow().buffer {
            self.live(env, |_| Ok(()))?;
            if let Some(value) = cached.get(env)? {
                return Ok(js::unknown(env, value));
            }
        }
        let size = self.live(env, |m| Ok(m.size()))?;
        let buffer = self.window(env, 0, size, "the mapping")?;
        self.views.borrow_mut().buffer = Some(JsRef::new(env, buffer, true)?);
        Ok(js::unknown(env, buffer))
    }

    /// A zero-copy Buffer over `[offset, offset+length)`: the way to reach mappings larger
    /// than the largest Buffer the runtime allows. Detached by `unmap()` like `buffer`.
    #[napi(
        ts_args_type = "offset: number | bigint, length: number | bigint",
        ts_return_type = "Buffer"
    )]
    pub fn view<'env>(&self, env: &'env Env, offset: Unknown, length: Unknown) -> Result<Unknown<'env>> {
        let (offset, length) = (usize_arg(env, &offset, "offset")?, usize_arg(env, &length, "length")?);
        let buffer = self.window(env, offset, length, "the view")?;
        Ok(js::unknown(env, buffer))
    }

    /// Copies `length` bytes at `offset` into a new Buffer (works for read-only mappings and
    /// runtimes without external buffers).
    #[napi(ts_args_type = "offset: number | bigint, length: number | bigint")]
    pub fn read(&self, env: Env, offset: Unknown, length: Unknown) -> Result<Buffer> {
        let (offset, length) = (usize_arg(&env, &offset, "offset")?, usize_arg(&env, &length, "length")?);
        self.live(&env, |m| {
            m.checked_range(offset, length)?;
            let mut out = vec![0u8; length];
            m.read(offset, &mut out)?;
            Ok(Buffer::from(out))
        })
    }

    /// Flushes `[offset, offset+length)` to the deepest persistence domain (`pmem2_deep_flush`).
    /// Throws `PMEM2_E_DEEP_FLUSH_RANGE` outside the mapping, `PMEM2_E_NOSUPP` for anonymous
    /// mappings.
    #[napi(ts_args_type = "offset: number | bigint, length: number | bigint")]
    pub fn deep_flush(&self, env: Env, offset: Unknown, length: Unknown) -> Result<()> {
        let (offset, length) = (usize_arg(&env, &offset, "offset")?, usize_arg(&env, &length, "length")?);
        self.live(&env, |m| m.deep_flush(offset, length))
    }

    /// Unmaps now: every Buffer over the mapping is detached (length 0) and every later
    /// call throws `PMEM2_E_MAPPING_NOT_FOUND`. A second call does nothing.
    #[napi]
    pub fn unmap(&self, env: Env) -> Result<()> {
        let mut state = self.region.state.write().unwrap_or_else(|e| e.into_inner());
        let State::Mapped(_) = &*state else {
            return Ok(());
        };
        let mut escaped = false;
        let mut views = self.views.borrow_mut();
        for ab in views.arraybuffers.drain(..) {
            if let Some(value) = ab.get(&env)? {
                escaped |= js::detach_arraybuffer(&env, value)?;
            }
            ab.delete(&env);
        }
        if let Some(buffer) = views.buffer.take() {
            buffer.delete(&env);
        }
        let State::Mapped(map) = std::mem::replace(&mut *state, State::Unmapped) else {
            unreachable!()
        };
        // Detached buffers never touch memory again, so without an escaped one the range can
        // go at once; with one, it stays reserved until that buffer is collected.
        if escaped {
            *state = State::Retired(map.release_file().or_throw(&env)?);
        } else {
            map.unmap().or_throw(&env)?;
        }
        Ok(())
    }

    /// The same as `unmap()` (libpmem2's `pmem2_map_delete`).
    #[napi(js_name = "delete")]
    pub fn delete_mapping(&self, env: Env) -> Result<()> {
        self.unmap(env)
    }
}

/// Seed form (libpmem2 API 1.0): maps the file set with `config.setFd(fd)`.
///
/// An unset granularity means PAGE and an unset protection follows the fd's access mode.
/// Throws `PMEM2_E_FILE_HANDLE_NOT_SET` without an fd, `PMEM2_E_INVALID_FILE_HANDLE` for a
/// bad fd, `PMEM2_E_MAP_RANGE` for a range past the end of the file, and `-errno` codes
/// (such as `EACCES` for an append-only file) for other mmap failures.
#[napi(ts_args_type = "config: Config")]
pub fn map(env: Env, config: Unknown) -> Result<Mapping> {
    let config = class_arg::<Config>(&env, &config, "config", "Config")?;
    Ok(Mapping::new(pmem2::map(&config.inner).or_throw(&env)?))
}

/// Modern form (libpmem2 1.12): maps `source` as `config` describes, with libpmem2's order of
/// checks and error codes.
#[napi(js_name = "mapNew", ts_args_type = "config: Config, source: Source")]
pub fn map_new(env: Env, config: Unknown, source: Unknown) -> Result<Mapping> {
    let config = class_arg::<Config>(&env, &config, "config", "Config")?;
    let source = class_arg::<Source>(&env, &source, "source", "Source")?;
    Ok(Mapping::new(
        pmem2::Mapping::new(&config.inner, &source.inner).or_throw(&env)?,
    ))
}
