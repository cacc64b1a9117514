//! Mappings: creation with libpmem2's checks, persistence, and release.
//!
//! # Safety
//! A [`Mapping`] owns `[addr, addr + reserved_len)` exclusively from creation until it is
//! dropped, unmapped or turned into a [`ReservedRange`]. Every raw access below is bounds
//! checked against `content_len` first.
#![allow(unsafe_code)]

use crate::config::{Config, Granularity, Protection, Sharing};
use crate::error::{Error, ErrorKind, Result};
use crate::fault::{self, Fault, Span};
use crate::granularity;
use crate::persist;
use crate::source::{FileType, Source, SourceKind};
use crate::sys;
use crate::sysfs::Sysfs;
use std::ptr::NonNull;

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

/// Which API form is mapping; they differ only in defaults and one error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `pmem2_map_new`: granularity required, protection READ|WRITE, EACCES → NO_ACCESS.
    Modern,
    /// API 1.0 `pmem2_map`: granularity PAGE, protection from the fd, EACCES stays -EACCES.
    Seed,
}

/// A mapped range of a [`Source`] (`struct pmem2_map`). Dropping it unmaps it.
///
/// ```
/// use pmem2::{Config, Granularity, Mapping, Source};
/// let file = tempfile::tempfile()?;
/// file.set_len(1 << 20)?;
/// let mut config = Config::new();
/// config.set_required_store_granularity(Granularity::Page);
/// let map = Mapping::new(&config, &Source::from_fd(&file)?)?;
/// map.write(0, b"hello")?;
/// map.persist(0, 5)?;
/// let mut back = [0u8; 5];
/// map.read(0, &mut back)?;
/// assert_eq!(&back, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When the file changes under the mapping
///
/// If another process truncates the file, every access to a page the file no longer covers
/// raises SIGBUS, and so does reading a poisoned line of persistent memory (an
/// uncorrectable media error). By default SIGBUS kills the process. pmem2 turns a SIGBUS
/// inside its own routines into an [`ErrorKind::IoFail`] error (`PMEM2_E_IO_FAIL`) whose
/// message names the offset and the cause, and the process goes on:
///
/// - [`read`](Mapping::read), [`write`](Mapping::write), [`memcpy`](Mapping::memcpy),
///   [`memmove`](Mapping::memmove), [`memmove_within`](Mapping::memmove_within) and
///   [`memset`](Mapping::memset), whether the fault is in this mapping or in the other
///   buffer of the copy (a source slice that is itself a truncated mapping);
/// - [`persist`](Mapping::persist) and [`flush`](Mapping::flush): on CACHE_LINE mappings the
///   flush instruction faults on such a page; on PAGE mappings `msync` succeeds regardless,
///   so pmem2 then reads the last byte of the range (when the mapping is readable) to find
///   out. BYTE persists touch no memory and report nothing.
///
/// The operation stops at the fault: bytes before it may have been written, nothing after
/// it is, and the range is not persisted. The part of the mapping the file still covers
/// keeps working. Access through raw pointers ([`address`](Mapping::address)) and the
/// function pointers ([`persist_fn`](Mapping::persist_fn), [`memcpy_fn`](Mapping::memcpy_fn),
/// ...) is not guarded: a SIGBUS there has the kernel's default effect, or whatever the
/// program's own SIGBUS handler does.
///
/// The mechanism (x86_64 and aarch64 Linux): a SIGBUS handler, installed on the first
/// guarded call and chaining to any handler installed before it, recognises a fault in the
/// pages the calling thread's current operation registered and resumes the thread at a
/// recovery point right after that operation; every other SIGBUS goes to the previous
/// handler or the default action. A SIGBUS handler installed later that does not chain to
/// the previous one turns the recovery off. Other architectures run the operations
/// unguarded.
#[derive(Debug)]
#[doc(alias = "pmem2_map")]
pub struct Mapping {
    addr: NonNull<u8>,
    content_len: usize,
    reserved_len: usize,
    granularity: Granularity,
    map_sync: bool,
    sharing: Sharing,
    protection: Protection,
    file_type: Option<FileType>,
    /// `st_rdev` of a device DAX source (for its deep-flush region), else 0.
    rdev: u64,
    /// Where the mapping starts in its file (0 for anonymous memory).
    file_offset: u64,
    /// `(st_dev, st_ino)` of the mapped file, `None` for anonymous memory.
    file_id: Option<(u64, u64)>,
}

// SAFETY: a Mapping is an address range plus plain metadata. Its methods either make
// system calls on the range or copy through raw pointers after bounds checks; none relies on
// thread-local state. Concurrent stores to the same bytes are the caller's to order, as with
// any shared memory.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` methods never mutate the struct itself.
unsafe impl Sync for Mapping {}

/// The alignment of the address a mapping is placed at: 2 MiB, or 1 GiB for mappings of
/// 2 GiB and more, so the kernel can use huge pages on DAX (libpmem2 `get_map_alignment`).
fn placement_alignment(len: usize, source_alignment: usize) -> usize {
    let align = if len >= 2 * GIB { GIB } else { 2 * MIB };
    align.max(source_alignment)
}

fn round_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

impl Mapping {
    /// Maps `source` as `config` describes (`pmem2_map_new`), with libpmem2's order of checks.
    ///
    /// # Errors
    /// In this order: [`ErrorKind::GranularityNotSet`]; source alignment and size errors
    /// (such as [`ErrorKind::InvalidFileHandle`] for a closed fd); [`ErrorKind::OffsetUnaligned`];
    /// [`ErrorKind::SrcDevdaxPrivate`]; [`ErrorKind::SourceEmpty`]; [`ErrorKind::LengthUnaligned`];
    /// [`ErrorKind::MapRange`] (also for an offset equal to the source size with length 0,
    /// where libpmem2 returns a bare `-EINVAL`); mmap failures ([`ErrorKind::NoAccess`] for
    /// EACCES, [`ErrorKind::MappingExists`] for EEXIST, [`ErrorKind::Os`] otherwise);
    /// [`ErrorKind::GranularityNotSupported`] when the platform only offers a coarser
    /// granularity than required.
    #[doc(alias = "pmem2_map_new")]
    pub fn new(config: &Config, source: &Source) -> Result<Mapping> {
        Mapping::create(config, source, Form::Modern)
    }

    pub(crate) fn create(config: &Config, source: &Source, form: Form) -> Result<Mapping> {
        let required = match (config.granularity, form) {
            (Some(g), _) => g,
            (None, Form::Seed) => Granularity::Page,
            (None, Form::Modern) => {
                return Err(Error::new(
                    ErrorKind::GranularityNotSet,
                    "please define the max granularity requested for the mapping (set_required_store_granularity)",
                ))
            }
        };
        let alignment = source.alignment()?;
        source.verify_fd_identity()?;
        let source_len = source.size()?;
        let offset = config.offset;
        if !offset.is_multiple_of(alignment as u64) {
            return Err(Error::new(
                ErrorKind::OffsetUnaligned,
                format!("offset {offset} is not a multiple of {alignment}"),
            ));
        }
        let (fd, file_type, rdev, file_id) = match source.kind {
            SourceKind::Anon { .. } => (None, None, 0, None),
            SourceKind::Fd {
                fd,
                file_type,
                rdev,
                dev,
                ino,
            } => (Some(fd), Some(file_type), rdev, Some((dev, ino))),
        };
        // Anonymous sources ignore the offset for mapping but still count it in the range check.
        let file_offset = if fd.is_some() { offset } else { 0 };
        let protection = match (config.protection, form, fd) {
            (Some(p), _, _) => p,
            (None, Form::Seed, Some(fd)) if sys::access_mode(fd)? == sys::AccessMode::ReadOnly => Protection::READ,
            (None, _, _) => Protection::READ | Protection::WRITE,
        };
        if file_type == Some(FileType::DeviceDax) && config.sharing == Sharing::Private {
            return Err(Error::new(
                ErrorKind::SrcDevdaxPrivate,
                "device DAX does not support mapping with MAP_PRIVATE",
            ));
        }
        let content_len = validate_range(config, source_len, alignment, file_offset)?;
        let content_len = usize::try_from(content_len).map_err(|_| {
            Error::new(
                ErrorKind::MapRange,
                format!("length {content_len} does not fit in the address space"),
            )
        })?;
        let page = sys::page_size();
        let reserved_len = round_up(content_len, page).ok_or_else(|| {
            Error::new(
                ErrorKind::MapRange,
                format!("length {content_len} does not fit in the address space"),
            )
        })?;

        let request = sys::MapRequest {
            len: content_len,
            align: placement_alignment(reserved_len, alignment),
            prot: sys::prot_bits(
                protection.contains(Protection::READ),
                protection.contains(Protection::WRITE),
                protection.contains(Protection::EXEC),
            ),
            private: config.sharing == Sharing::Private,
            fd,
            offset: file_offset,
        };
        let (addr, map_sync) = sys::map_aligned(&request).map_err(|errno| mmap_error(errno, form))?;
        let mut mapping = Mapping {
            addr,
            content_len,
            reserved_len,
            granularity: Granularity::Page,
            map_sync,
            sharing: config.sharing,
            protection,
            file_type,
            rdev,
            file_offset,
            file_id,
        };
        let available = match fd {
            None => Granularity::Byte,
            Some(_) => granularity::available(
                Sysfs::from_env().platform_has_eadr(),
                map_sync,
                config.sharing,
                granularity::forced_granularity(),
            ),
        };
        if available > required {
            // Dropping `mapping` unmaps it.
            return Err(Error::new(
                ErrorKind::GranularityNotSupported,
                format!(
                    "requested granularity {} not available (this mapping offers {}) because {}",
                    granularity::name(required),
                    granularity::name(available),
                    granularity::unavailable_reason(available)
                ),
            ));
        }
        mapping.granularity = available;
        Ok(mapping)
    }

    /// A private copy-on-write alias of the same file range, readable and writable, for a
    /// runtime that cannot make memory read-only (a JavaScript `Buffer` over a read-only
    /// mapping): a store through it can neither reach the file nor fault.
    ///
    /// Reads see the file: a page not stored to through the alias shows the file's current
    /// contents, as the kernel shares unmodified pages of a private mapping with the page cache.
    /// A store copies its page into private memory; from then on that page shows the stored
    /// bytes and no longer follows the file. The alias is an independent [`Mapping`] (private,
    /// BYTE granularity) of `[offset, offset + size)` of the same file, released on its own.
    /// `source` must be an open source of the mapped file (the mapping keeps no descriptor).
    ///
    /// ```
    /// use pmem2::{Config, Granularity, Mapping, Protection, Source};
    /// use std::os::unix::fs::FileExt;
    /// let file = tempfile::tempfile()?;
    /// file.write_all_at(b"file", 0)?;
    /// file.set_len(4096)?;
    /// let source = Source::from_fd(&file)?;
    /// let mut config = Config::new();
    /// config.set_required_store_granularity(Granularity::Page).set_protection(Protection::READ);
    /// let read_only = Mapping::new(&config, &source)?;
    /// let alias = read_only.private_alias(&source)?;
    /// alias.write(0, b"mine")?; // private memory
    /// let mut bytes = [0; 4];
    /// read_only.read(0, &mut bytes)?;
    /// assert_eq!(&bytes, b"file");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::SourceTypeNotSupported`] for an anonymous mapping or source;
    /// [`ErrorKind::InvalidFileHandle`] when `source` is another file than the mapped one;
    /// [`ErrorKind::SrcDevdaxPrivate`] for device DAX (no private mappings); otherwise as
    /// [`Mapping::new`] ([`ErrorKind::MapRange`] if the file shrank below the range).
    pub fn private_alias(&self, source: &Source) -> Result<Mapping> {
        let (Some(file_id), SourceKind::Fd { dev, ino, .. }) = (self.file_id, &source.kind) else {
            return Err(Error::new(
                ErrorKind::SourceTypeNotSupported,
                "a private alias needs a file mapping and a file source",
            ));
        };
        if file_id != (*dev, *ino) {
            return Err(Error::new(
                ErrorKind::InvalidFileHandle,
                "the source is not the file this mapping maps",
            ));
        }
        let mut config = Config::new();
        config
            .set_required_store_granularity(Granularity::Page)
            .set_sharing(Sharing::Private)
            .set_protection(Protection::READ | Protection::WRITE)
            .set_offset(self.file_offset)?;
        config.set_length(self.content_len as u64);
        Mapping::new(&config, source)
    }

    /// The start address (aligned to at least 2 MiB).
    #[doc(alias = "pmem2_map_get_address")]
    pub fn address(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// The mapped length in bytes; not always a page multiple (length 0 over an odd-sized file).
    #[doc(alias = "pmem2_map_get_size")]
    pub fn size(&self) -> usize {
        self.content_len
    }

    /// The effective store granularity: what `persist` must do for stores to be durable.
    #[doc(alias = "pmem2_map_get_store_granularity")]
    pub fn store_granularity(&self) -> Granularity {
        self.granularity
    }

    /// Whether the kernel granted `MAP_SYNC` (a DAX file: metadata is always durable).
    pub fn map_sync(&self) -> bool {
        self.map_sync
    }

    /// The sharing mode the mapping was made with.
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The protection the mapping was made with.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// The file type of an fd mapping, `None` for an anonymous one.
    pub fn file_type(&self) -> Option<FileType> {
        self.file_type
    }

    /// The device numbers (major, minor) of a device DAX source.
    pub(crate) fn device_numbers(&self) -> (u32, u32) {
        (libc::major(self.rdev), libc::minor(self.rdev))
    }

    /// The address of `[offset, offset + len)` after checking it lies inside the mapping.
    ///
    /// # Errors
    /// [`ErrorKind::LengthOutOfRange`] when the range overflows or passes the end.
    pub fn checked_range(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.content_len => Ok(self.addr.as_ptr().wrapping_add(offset)),
            _ => Err(Error::new(
                ErrorKind::LengthOutOfRange,
                format!(
                    "range at offset {offset} of length {len} exceeds the mapping size {}",
                    self.content_len
                ),
            )),
        }
    }

    /// Flushes `[offset, offset+len)` and waits until it is durable (flush + drain).
    ///
    /// PAGE: `msync(MS_SYNC)` of the page-aligned range; CACHE_LINE: cache-line flushes and a
    /// fence; BYTE: a fence.
    ///
    /// # Errors
    /// [`ErrorKind::LengthOutOfRange`] outside the mapping; [`ErrorKind::Os`] if msync fails
    /// (libpmem2 aborts the process instead); [`ErrorKind::IoFail`] if the range reaches a
    /// page the file no longer covers or a poisoned line (see
    /// [the type's documentation](Mapping#when-the-file-changes-under-the-mapping)).
    #[doc(alias = "pmem2_get_persist_fn")]
    pub fn persist(&self, offset: usize, len: usize) -> Result<()> {
        self.flush_as("persist", offset, len)?;
        if self.granularity != Granularity::Page {
            persist::fence();
        }
        Ok(())
    }

    /// Starts making `[offset, offset+len)` durable; [`Mapping::drain`] completes it. For
    /// PAGE mappings this is already the full msync.
    ///
    /// # Errors
    /// As [`Mapping::persist`].
    #[doc(alias = "pmem2_get_flush_fn")]
    pub fn flush(&self, offset: usize, len: usize) -> Result<()> {
        self.flush_as("flush", offset, len)
    }

    fn flush_as(&self, what: &str, offset: usize, len: usize) -> Result<()> {
        let start = self.checked_range(offset, len)?;
        match self.granularity {
            Granularity::Page => {
                self.msync_range(start, len)?;
                self.probe_end(what, start, len)
            }
            // A flush of a page without read access would fault, and such a mapping cannot
            // have stored anything itself.
            Granularity::CacheLine if self.protection.intersects(Protection::READ | Protection::WRITE) => {
                let start = start.cast_const();
                self.guard(what, [Span::new(start, len), Span::NONE], move || {
                    persist::flush_lines(start, len)
                })
            }
            Granularity::CacheLine => Ok(()),
            Granularity::Byte => Ok(()),
        }
    }

    /// After an msync, which succeeds even for pages the file no longer covers: reads the
    /// last byte of the range, which faults if the file was truncated below it.
    pub(crate) fn probe_end(&self, what: &str, start: *mut u8, len: usize) -> Result<()> {
        if len == 0 || !self.protection.contains(Protection::READ) {
            return Ok(());
        }
        let last = start.wrapping_add(len - 1).cast_const();
        self.guard(what, [Span::new(last, 1), Span::NONE], move || {
            // SAFETY: `last` is inside this live, readable mapping (the caller checked the
            // range); a volatile read so the probe is not optimised away.
            unsafe { last.read_volatile() };
        })
    }

    /// Runs `op`, one of pmem2's raw copy or flush routines over `spans`, with a SIGBUS it
    /// causes there turned into [`ErrorKind::IoFail`] (see `crate::fault`).
    #[inline]
    pub(crate) fn guard<R: Copy, F: FnOnce() -> R + Copy>(&self, what: &str, spans: [Span; 2], op: F) -> Result<R> {
        fault::guarded(spans, op).map_err(|fault| self.fault_error(what, fault))
    }

    #[cold]
    fn fault_error(&self, what: &str, fault: Fault) -> Error {
        let base = self.addr.as_ptr() as usize;
        let place = match fault.addr.checked_sub(base) {
            Some(offset) if offset < self.reserved_len => format!("at offset {offset} of the mapping"),
            _ => format!(
                "at address {:#x}, outside this mapping (in the other buffer of the copy)",
                fault.addr
            ),
        };
        Error::new(
            ErrorKind::IoFail,
            format!("{what}: SIGBUS ({}) {place}: {}", fault.code_name(), fault.cause()),
        )
    }

    /// Waits for earlier flushes to complete (a store fence; nothing for PAGE mappings).
    #[doc(alias = "pmem2_get_drain_fn")]
    pub fn drain(&self) {
        if self.granularity != Granularity::Page {
            persist::fence();
        }
    }

    fn msync_range(&self, start: *mut u8, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let page = sys::page_size();
        let base = self.addr.as_ptr() as usize;
        let from = (start as usize) & !(page - 1);
        let to = (start as usize + len).min(base + self.reserved_len);
        crate::mem::counters::count_msync();
        // SAFETY: `from` is page aligned and not below `base` (itself page aligned), and
        // `to` is within the reservation this mapping owns.
        unsafe { sys::msync(from as *const u8, to - from) }
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping.
    ///
    /// # Errors
    /// [`ErrorKind::NoAccess`] without READ protection; [`ErrorKind::LengthOutOfRange`];
    /// [`ErrorKind::IoFail`] on a page the file no longer covers or a poisoned line (see
    /// [the type's documentation](Mapping#when-the-file-changes-under-the-mapping)).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.require(Protection::READ, "read")?;
        let (len, dst) = (buf.len(), buf.as_mut_ptr());
        let src = self.checked_range(offset, len)?.cast_const();
        self.guard("read", [Span::new(src, len), Span::new(dst, len)], move || {
            // SAFETY: the range is inside the mapping and readable; `buf` is a distinct
            // exclusive borrow, so the regions do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
        })
    }

    /// Copies `data` into the mapping at `offset` (plain stores; call `persist` after).
    ///
    /// # Errors
    /// [`ErrorKind::NoAccess`] without WRITE protection; [`ErrorKind::LengthOutOfRange`];
    /// [`ErrorKind::IoFail`] as for [`Mapping::read`], in the mapping or in `data`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.require(Protection::WRITE, "write")?;
        let (len, src) = (data.len(), data.as_ptr());
        let dst = self.checked_range(offset, len)?;
        self.guard("write", [Span::new(dst, len), Span::new(src, len)], move || {
            // SAFETY: the range is inside the mapping and writable; `copy` tolerates `data`
            // being a view of this same mapping.
            unsafe { std::ptr::copy(src, dst, len) }
        })
    }

    pub(crate) fn require(&self, needed: Protection, what: &str) -> Result<()> {
        if self.protection.contains(needed) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NoAccess,
            format!("cannot {what}: the mapping's protection is {}", self.protection),
        ))
    }

    /// Unmaps now, reporting a failure (dropping the mapping unmaps silently).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] if munmap fails.
    #[doc(alias = "pmem2_map_delete")]
    pub fn unmap(self) -> Result<()> {
        let (addr, len) = (self.addr, self.reserved_len);
        std::mem::forget(self);
        // SAFETY: the mapping owned the range and has been forgotten, so nothing else frees it.
        unsafe { sys::unmap(addr, len) }
    }

    /// Releases the file at once but keeps the address range reserved, backed by private
    /// zero pages, until the returned [`ReservedRange`] is dropped.
    ///
    /// For runtimes that cannot revoke every pointer into the mapping immediately (such as
    /// JavaScript ArrayBuffers moved by `transfer()`): a late access reads or writes harmless
    /// anonymous memory instead of faulting or reaching a mapping made later at the same address.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] if the range could not be replaced (the kernel ran out of memory).
    /// The range is then abandoned: a failed `MAP_FIXED` may already have unmapped it and
    /// another thread may have mapped something there, so pmem2 never touches it again.
    pub fn release_file(self) -> Result<ReservedRange> {
        let (addr, len) = (self.addr, self.reserved_len);
        std::mem::forget(self);
        // SAFETY: the mapping owned the range and has been forgotten.
        unsafe { sys::replace_with_anonymous(addr, len) }?;
        Ok(ReservedRange { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping owns its range and is going away.
        let _ = unsafe { sys::unmap(self.addr, self.reserved_len) };
    }
}

/// An address range kept reserved after [`Mapping::release_file`]; unmapped on drop.
#[derive(Debug)]
pub struct ReservedRange {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: only an address range; dropping it from any thread is fine.
unsafe impl Send for ReservedRange {}
// SAFETY: it has no `&self` methods that touch memory.
unsafe impl Sync for ReservedRange {}

impl ReservedRange {
    /// The start of the range.
    pub fn address(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// The length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never, for a range from a mapping).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for ReservedRange {
    fn drop(&mut self) {
        // SAFETY: the range was handed over by a Mapping and is owned by this value.
        let _ = unsafe { sys::unmap(self.addr, self.len) };
    }
}

/// libpmem2's `pmem2_config_validate_length`, then the content length. `map_offset` is where
/// the mapping really starts (0 for anonymous sources, which still count `config.offset` in
/// the range check, as libpmem2 does).
fn validate_range(config: &Config, source_len: u64, alignment: usize, map_offset: u64) -> Result<u64> {
    if source_len == 0 {
        return Err(Error::new(ErrorKind::SourceEmpty, "file length is equal 0"));
    }
    let (offset, length) = (config.offset, config.length);
    if !length.is_multiple_of(alignment as u64) {
        return Err(Error::new(
            ErrorKind::LengthUnaligned,
            format!("length {length} is not a multiple of {alignment}"),
        ));
    }
    let end = offset.checked_add(length).ok_or_else(|| {
        Error::new(
            ErrorKind::MapRange,
            format!("overflow of offset {offset} and length {length}"),
        )
    })?;
    if end > source_len {
        return Err(Error::new(
            ErrorKind::MapRange,
            format!("mapping larger than file size: offset {offset} + length {length} > {source_len}"),
        ));
    }
    let content = if length != 0 { length } else { source_len - map_offset };
    if content == 0 {
        // libpmem2 lets mmap fail here with -EINVAL; a range error says what is wrong.
        return Err(Error::new(
            ErrorKind::MapRange,
            format!("offset {offset} equals the file size: nothing left to map"),
        ));
    }
    Ok(content)
}

fn mmap_error(errno: i32, form: Form) -> Error {
    match (errno, form) {
        (libc::EACCES, Form::Modern) => Error::new(
            ErrorKind::NoAccess,
            "mmap: Permission denied (the fd's access mode or the file's attributes forbid this protection)",
        ),
        (libc::EOPNOTSUPP, _) => Error::new(ErrorKind::NotSupported, "mmap: Operation not supported"),
        (libc::EEXIST, _) => Error::new(ErrorKind::MappingExists, "mmap: File exists"),
        _ => Error::os(errno, "mmap"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 MiB below 2 GiB, 1 GiB from 2 GiB (libpmem2's `get_map_alignment`), never less than
    /// the source's alignment. (The kernel's placement, not this value, is what tests of real
    /// mappings see, and a 2 MiB request may land 1 GiB aligned by luck.)
    #[test]
    fn placement_alignment_follows_libpmem2() {
        assert_eq!(placement_alignment(4096, 4096), 2 * MIB);
        assert_eq!(placement_alignment(GIB + 4096, 4096), 2 * MIB);
        assert_eq!(placement_alignment(2 * GIB - 4096, 4096), 2 * MIB);
        assert_eq!(placement_alignment(2 * GIB, 4096), GIB);
        assert_eq!(placement_alignment(4096, 4 * MIB), 4 * MIB);
    }

    /// libpmem2's `pmem2_map_new` turns mmap's EACCES into `PMEM2_E_NO_ACCESS` (API 1.0's
    /// `pmem2_map` keeps `-EACCES`), ENOTSUP into `PMEM2_E_NOSUPP`, EEXIST into
    /// `PMEM2_E_MAPPING_EXISTS`, anything else into `-errno`. `map_aligned` retries EEXIST and
    /// EOPNOTSUPP itself, so no real mapping reaches those two arms.
    #[test]
    fn mmap_errors_follow_libpmem2() {
        let code = |errno, form| mmap_error(errno, form).code();
        assert_eq!(code(libc::EACCES, Form::Modern), -100032);
        assert_eq!(code(libc::EACCES, Form::Seed), -libc::EACCES);
        for form in [Form::Modern, Form::Seed] {
            assert_eq!(code(libc::EOPNOTSUPP, form), -100001);
            assert_eq!(code(libc::EEXIST, form), -100007);
            assert_eq!(code(libc::ENOMEM, form), -libc::ENOMEM);
            assert_eq!(code(libc::EBADF, form), -libc::EBADF);
        }
    }
}
