//! `Mapping`, `map` (seed form) and `mapNew` (modern form).
//!
//! Memory safety towards JavaScript rests on `region.rs`: mapped memory is reachable from
//! JavaScript only through external buffers it makes and counts, and a range is unmapped
//! only when none of them can reach it any more.
//!
//! Re-entrancy: user JavaScript can run inside a call here (getters on arguments, setters
//! and constructors reached while an error is built). No method holds a lock or a borrow, or
//! a pointer into JavaScript memory, across such a point: errors are built only after every
//! lock is released.

use crate::args::{class_arg, usize_arg};
use crate::config::{Config, Granularity, Sharing};
use crate::error::{self, OrThrow};
use crate::js;
use crate::region::Region;
use crate::source::Source;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

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
    /// For a mapping without `PROT_WRITE`: its private copy-on-write alias
    /// (`pmem2::Mapping::private_alias`), which `buffer` and `view` expose instead, so that a
    /// store through them changes private memory only. Unmapped with the mapping.
    alias: Option<Arc<Region>>,
}

/// Whether `map` gets a private alias for its Buffers: readable, not writable, a file.
pub(crate) fn wants_alias(map: &pmem2::Mapping) -> bool {
    let protection = map.protection();
    protection.contains(pmem2::Protection::READ)
        && !protection.contains(pmem2::Protection::WRITE)
        && map.file_type().is_some()
}

/// The private alias of `map` from the still-open `source`, when it wants one. An alias that
/// cannot be made (device DAX has no private mappings) leaves the mapping without Buffers, as
/// before aliases existed.
pub(crate) fn alias_for(map: &pmem2::Mapping, source: &pmem2::Source) -> Option<pmem2::Mapping> {
    wants_alias(map).then(|| map.private_alias(source).ok()).flatten()
}

impl Mapping {
    pub(crate) fn new(env: &Env, map: pmem2::Mapping, alias: Option<pmem2::Mapping>) -> Result<Mapping> {
        let region = Region::new(env, map)?;
        // Without a registered alias the mapping still works, without Buffers.
        let alias = alias.and_then(|alias| Region::alias(env, alias).ok());
        Ok(Mapping { region, alias })
    }

    /// Runs `f` on the live mapping, or throws `PMEM2_E_MAPPING_NOT_FOUND` after `unmap()`.
    pub(crate) fn live<R>(&self, env: &Env, f: impl FnOnce(&pmem2::Mapping) -> pmem2::Result<R>) -> Result<R> {
        self.region.with_live(f).or_throw(env)
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The region whose memory `buffer` and `view` expose: the mapping itself when it is
    /// readable and writable, its private alias when it is read-only.
    fn buffer_region(&self, env: &Env) -> Result<&Arc<Region>> {
        let writable = self.live(env, |m| {
            let rw = pmem2::Protection::READ | pmem2::Protection::WRITE;
            Ok(m.protection().contains(rw))
        })?;
        match (&self.alias, writable) {
            (_, true) => Ok(&self.region),
            (Some(alias), false) => Ok(alias),
            (None, false) => Err(error::pmem2(
                env,
                pmem2::Error::new(
                    pmem2::ErrorKind::NoAccess,
                    "a Buffer over the mapping needs PROT_READ | PROT_WRITE, or PROT_READ on a file that can be \
                     mapped privately (not device DAX): JavaScript cannot make a Buffer read-only and a store to a \
                     read-only page would kill the process; use mapping.read(offset, length)",
                ),
            )),
        }
    }

    /// A Buffer over `[offset, offset+len)`, after the checks `buffer` and `view` share.
    fn window(&self, env: &Env, offset: usize, len: usize, what: &str) -> Result<napi::sys::napi_value> {
        self.live(env, |m| m.checked_range(offset, len).map(|_| ()))?;
        let region = self.buffer_region(env)?;
        let max = error::runtime(env)?.max_buffer_length;
        if len as f64 > max {
            return Err(error::range(
                env,
                &format!(
                    "{what} ({len} bytes) is larger than the largest Buffer this runtime allows ({max}); \
                     use mapping.view(offset, length) for a smaller window"
                ),
            ));
        }
        region.external_buffer(env, offset, len)
    }

    /// Unmaps the mapping and its alias; the first failure is reported, after both.
    fn unmap_all(&self, env: &Env) -> Result<()> {
        let main = self.region.unmap(env);
        let alias = self.alias.as_ref().map_or(Ok(()), |alias| alias.unmap(env));
        main.and(alias)
    }
}

impl ObjectFinalize for Mapping {
    fn finalize(self, env: Env) -> Result<()> {
        js::no_unwind(|| {
            self.region.object_finalized(&env);
            if let Some(alias) = &self.alias {
                alias.object_finalized(&env);
            }
            Ok(())
        })
    }
}

#[napi]
impl Mapping {
    /// `true` once `unmap()` (or `delete()`, or disposal) ran: every other member then throws
    /// `PMEM2_E_MAPPING_NOT_FOUND`, this one never throws.
    #[napi(getter, catch_unwind)]
    pub fn unmapped(&self) -> bool {
        !self.region.is_mapped()
    }

    /// The start address (2 MiB aligned) as a bigint.
    #[napi(getter, catch_unwind)]
    pub fn address(&self, env: Env) -> Result<BigInt> {
        self.live(&env, |m| Ok(BigInt::from(m.address() as u64)))
    }

    /// The mapped length in bytes.
    #[napi(getter, catch_unwind)]
    pub fn size(&self, env: Env) -> Result<f64> {
        self.live(&env, |m| Ok(m.size() as f64))
    }

    /// The effective store granularity: what `persist` does to make stores durable.
    #[napi(getter, catch_unwind)]
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
    #[napi(getter, catch_unwind)]
    pub fn map_sync(&self, env: Env) -> Result<bool> {
        self.live(&env, |m| Ok(m.map_sync()))
    }

    /// The sharing mode the mapping was made with.
    #[napi(getter, catch_unwind)]
    pub fn sharing(&self, env: Env) -> Result<Sharing> {
        self.live(&env, |m| {
            Ok(match m.sharing() {
                pmem2::Sharing::Shared => Sharing::Shared,
                pmem2::Sharing::Private => Sharing::Private,
            })
        })
    }

    /// The protection the mapping was made with (`PROT_*` bits).
    #[napi(getter, catch_unwind)]
    pub fn protection(&self, env: Env) -> Result<u32> {
        self.live(&env, |m| Ok(m.protection().bits()))
    }

    /// How `persist` makes stores durable: `'clwb'`, `'clflushopt'` or `'clflush'` (CACHE_LINE),
    /// `'msync'` (PAGE), or `'none'` (BYTE: a fence suffices).
    #[napi(
        getter,
        catch_unwind,
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
    /// loop. Rejects with the same `Pmem2Error`s. The mapping stays mapped until the promise
    /// settles, even if the Mapping object is collected meanwhile. Without arguments it covers
    /// the whole mapping; without `length`, `offset` to the end.
    #[napi(
        catch_unwind,
        ts_args_type = "offset?: number | bigint, length?: number | bigint",
        ts_return_type = "Promise<void>"
    )]
    pub fn persist_async(
        &self,
        env: Env,
        offset: Unknown,
        length: Unknown,
    ) -> Result<AsyncTask<crate::tasks::PersistTask>> {
        let (offset, length) = crate::data_path::range_args(&env, &offset, &length)?;
        Ok(AsyncTask::new(crate::tasks::PersistTask::new(
            Arc::clone(&self.region),
            offset,
            length,
        )))
    }

    /// A zero-copy Buffer over the mapped bytes (the same Buffer on every access).
    ///
    /// On a read-only file mapping (`readOnly: true`, `PROT_READ`) it is a private
    /// copy-on-write alias of the same file range: reads see the file (a page not stored to
    /// through it shows the file's current contents), a store changes a private copy of its
    /// page, never the file, and that page no longer follows later changes of the file. No
    /// store through it can reach the file or kill the process.
    ///
    /// Throws `PMEM2_E_NO_ACCESS` for a mapping without `PROT_READ`, or read-only on device
    /// DAX (no private mappings: use `read()`), and `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED` where
    /// the runtime forbids external memory.
    #[napi(getter, catch_unwind, ts_return_type = "Buffer")]
    pub fn buffer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let size = self.live(env, |m| Ok(m.size()))?;
        let region = self.buffer_region(env)?;
        if let Some(cached) = region.cached_buffer(env)? {
            return Ok(js::unknown(env, cached));
        }
        let buffer = self.window(env, 0, size, "the mapping")?;
        region.cache_buffer(env, buffer)?;
        Ok(js::unknown(env, buffer))
    }

    /// A zero-copy Buffer over `[offset, offset+length)`: the way to reach mappings larger
    /// than the largest Buffer the runtime allows. Detached by `unmap()` like `buffer`; over the
    /// private alias, like `buffer`, on a read-only mapping.
    #[napi(
        catch_unwind,
        ts_args_type = "offset: number | bigint, length: number | bigint",
        ts_return_type = "Buffer"
    )]
    pub fn view<'env>(&self, env: &'env Env, offset: Unknown, length: Unknown) -> Result<Unknown<'env>> {
        let (offset, length) = (usize_arg(env, &offset, "offset")?, usize_arg(env, &length, "length")?);
        let buffer = self.window(env, offset, length, "the view")?;
        Ok(js::unknown(env, buffer))
    }

    /// Copies `length` bytes at `offset` into a new Buffer (works for read-only mappings and
    /// runtimes without external buffers). A length above `buffer.constants.MAX_LENGTH` is a
    /// `RangeError` with code `ERR_BUFFER_TOO_LARGE`, before anything is allocated or copied.
    #[napi(
        catch_unwind,
        ts_args_type = "offset: number | bigint, length: number | bigint",
        ts_return_type = "Buffer"
    )]
    pub fn read<'env>(&self, env: &'env Env, offset: Unknown, length: Unknown) -> Result<Unknown<'env>> {
        let (offset, length) = (usize_arg(env, &offset, "offset")?, usize_arg(env, &length, "length")?);
        let runtime = error::runtime(env)?;
        if length as f64 > runtime.max_buffer_length {
            return Err(error::buffer_too_large(env, runtime.max_buffer_length));
        }
        self.live(env, |m| {
            m.read(0, &mut [])?; // PMEM2_E_NO_ACCESS without PROT_READ, as a read would
            m.checked_range(offset, length).map(|_| ())
        })?;
        // Allocated by the runtime, which throws a RangeError when memory runs out.
        let buffer = error::alloc_buffer(env, length)?;
        let (data, len) = js::fresh_buffer_bytes(env, buffer)?;
        self.live(env, |m| {
            let out: &mut [u8] = if len == 0 {
                &mut []
            } else {
                // SAFETY: `data` is the start of the `len` bytes of a Buffer made just above that
                // no JavaScript has seen yet, and no JavaScript runs until the copy returns.
                #[allow(unsafe_code)]
                unsafe {
                    std::slice::from_raw_parts_mut(data, len)
                }
            };
            m.read(offset, out)
        })?;
        Ok(js::unknown(env, buffer))
    }

    /// Flushes `[offset, offset+length)` to the deepest persistence domain (`pmem2_deep_flush`).
    /// Throws `PMEM2_E_DEEP_FLUSH_RANGE` outside the mapping, `PMEM2_E_NOSUPP` for anonymous
    /// mappings.
    #[napi(catch_unwind, ts_args_type = "offset: number | bigint, length: number | bigint")]
    pub fn deep_flush(&self, env: Env, offset: Unknown, length: Unknown) -> Result<()> {
        let (offset, length) = (usize_arg(&env, &offset, "offset")?, usize_arg(&env, &length, "length")?);
        self.live(&env, |m| m.deep_flush(offset, length))
    }

    /// Unmaps now: every Buffer over the mapping is detached (length 0) and every later
    /// call throws `PMEM2_E_MAPPING_NOT_FOUND`. The file is released at once; if a buffer's
    /// memory escaped detaching (moved by `transfer()`, a BYOB stream read or `postMessage`),
    /// its address range stays reserved, as anonymous memory, until that memory is collected.
    /// A second call does nothing.
    #[napi(catch_unwind)]
    pub fn unmap(&self, env: Env) -> Result<()> {
        self.unmap_all(&env)
    }

    /// The same as `unmap()` (libpmem2's `pmem2_map_delete`).
    #[napi(catch_unwind, js_name = "delete")]
    pub fn delete_mapping(&self, env: Env) -> Result<()> {
        self.unmap_all(&env)
    }
}

/// Seed form (libpmem2 API 1.0): maps the file set with `config.setFd(fd)`.
///
/// An unset granularity means PAGE and an unset protection follows the fd's access mode.
/// Throws `PMEM2_E_FILE_HANDLE_NOT_SET` without an fd, `PMEM2_E_INVALID_FILE_HANDLE` for a
/// bad fd, `PMEM2_E_MAP_RANGE` for a range past the end of the file, and `-errno` codes
/// (such as `EACCES` for an append-only file) for other mmap failures.
#[napi(catch_unwind, ts_args_type = "config: Config")]
pub fn map(env: Env, config: Unknown) -> Result<Mapping> {
    let config = class_arg::<Config>(&env, &config, "config", "Config")?.inner.clone();
    let map = pmem2::map(&config).or_throw(&env)?;
    let source = config.fd().and_then(|fd| pmem2::Source::from_raw_fd(fd).ok());
    let alias = source.and_then(|source| alias_for(&map, &source));
    Mapping::new(&env, map, alias)
}

/// Modern form (libpmem2 1.12): maps `source` as `config` describes, with libpmem2's order of
/// checks and error codes.
#[napi(catch_unwind, js_name = "mapNew", ts_args_type = "config: Config, source: Source")]
pub fn map_new(env: Env, config: Unknown, source: Unknown) -> Result<Mapping> {
    // Each argument is copied out at once: no Rust reference into a JavaScript object is
    // held while the next one is looked at.
    let config = class_arg::<Config>(&env, &config, "config", "Config")?.inner.clone();
    let source = class_arg::<Source>(&env, &source, "source", "Source")?.inner.clone();
    let map = pmem2::Mapping::new(&config, &source).or_throw(&env)?;
    let alias = alias_for(&map, &source);
    Mapping::new(&env, map, alias)
}
