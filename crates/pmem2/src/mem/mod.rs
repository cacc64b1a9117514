//! Copies that persist: `memcpy`, `memmove` and `memset` into a mapping, with libpmem2's
//! flags and its exact choice of temporal or non-temporal stores per granularity.
//!
//! Dispatch (libpmem2 `x86_64/init.c`, `persist.c`):
//!
//! | Granularity | Variant chosen | Afterwards |
//! |---|---|---|
//! | CACHE_LINE | `NOFLUSH` → temporal, no flush; `NONTEMPORAL`/`WC` → non-temporal + flush; `TEMPORAL`/`WB` → temporal + flush; else non-temporal from [`movnt_threshold`](crate::persist::CpuConfig::movnt_threshold) bytes (256) | fence unless `NODRAIN` or `NOFLUSH` |
//! | BYTE (eADR, private, anonymous) | `NOFLUSH` → temporal; `NONTEMPORAL` → non-temporal; else temporal; never flushed | fence unless `NODRAIN` or `NOFLUSH` |
//! | PAGE | as CACHE_LINE with `NODRAIN` ignored | fence and `msync` unless `NOFLUSH` |
//!
//! Every variant is memmove-safe, writes no byte outside the destination, and stores
//! 8-byte-aligned words of an 8-byte-aligned destination with single stores of at least
//! 8 bytes, so a crash leaves each such word old or new.
//!
//! # Safety
//! The copy functions behind [`MemmoveFn`] and [`MemsetFn`] write through raw pointers; their
//! contracts are on the type aliases. The safe [`Mapping`] methods check bounds and
//! protection before calling them.
#![allow(unsafe_code)]

use crate::config::{Granularity, Protection};
use crate::error::{Error, ErrorKind, Result};
use crate::fault::Span;
use crate::map::Mapping;
use crate::persist::{self, CopyIsa, DrainFn, Empty, FlushFn, Flusher, NoFlush, PersistFn};
use crate::source::FileType;
use crate::sysfs::Sysfs;
use std::io;
use std::sync::OnceLock;

pub mod counters;
mod generic;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use counters::{Op, Variant};

bitflags::bitflags! {
    /// Flags of the copy functions, with the values of `PMEM2_F_MEM_*`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct MemFlags: u32 {
        /// `PMEM2_F_MEM_NODRAIN`: skip the final fence; call [`Mapping::drain`] later.
        const NODRAIN = 1 << 0;
        /// `PMEM2_F_MEM_NONTEMPORAL`: non-temporal stores, bypassing the cache.
        const NONTEMPORAL = 1 << 1;
        /// `PMEM2_F_MEM_TEMPORAL`: ordinary stores, flushed line by line.
        const TEMPORAL = 1 << 2;
        /// `PMEM2_F_MEM_WC`: write-combining (non-temporal) stores, except on BYTE mappings.
        const WC = 1 << 3;
        /// `PMEM2_F_MEM_WB`: write-back (temporal) stores.
        const WB = 1 << 4;
        /// `PMEM2_F_MEM_NOFLUSH`: temporal stores, neither flushed nor drained (implies NODRAIN).
        const NOFLUSH = 1 << 5;
    }
}

/// A memmove/memcpy function for one mapping (`pmem2_memmove_fn`): copies `len` bytes
/// from `src` to `dest` (the ranges may overlap) and makes them durable as `flags` says.
///
/// Returns `Err` only for a PAGE mapping whose `msync` failed (libpmem2 aborts there).
///
/// # Safety
/// `[dest, dest + len)` must lie inside a live, writable mapping whose function this is;
/// `[src, src + len)` must be readable for the whole call. Nothing else may access the
/// destination concurrently.
pub type MemmoveFn = unsafe fn(dest: *mut u8, src: *const u8, len: usize, flags: MemFlags) -> io::Result<()>;

/// A memcpy function: the same function as [`MemmoveFn`] (memmove-safe), as in libpmem2.
pub type MemcpyFn = MemmoveFn;

/// A memset function for one mapping (`pmem2_memset_fn`): fills `len` bytes at `dest` with
/// `value` and makes them durable as `flags` says.
///
/// # Safety
/// As [`MemmoveFn`] for the destination.
pub type MemsetFn = unsafe fn(dest: *mut u8, value: u8, len: usize, flags: MemFlags) -> io::Result<()>;

/// One copy implementation: temporal and non-temporal variants, each specialised for a
/// [`Flusher`]. Implementations count themselves in [`counters`].
pub(crate) trait Ops {
    /// Temporal stores; every written line is flushed with `F`.
    ///
    /// # Safety
    /// `len > 0`; `[dest, dest+len)` writable and `[src, src+len)` readable (they may overlap).
    unsafe fn memmove_mov<F: Flusher>(dest: *mut u8, src: *const u8, len: usize);
    /// Non-temporal stores (temporal + `F` for unaligned edges).
    ///
    /// # Safety
    /// As [`Ops::memmove_mov`].
    unsafe fn memmove_movnt<F: Flusher>(dest: *mut u8, src: *const u8, len: usize);
    /// Temporal fill.
    ///
    /// # Safety
    /// `len > 0`; `[dest, dest+len)` writable.
    unsafe fn memset_mov<F: Flusher>(dest: *mut u8, value: u8, len: usize);
    /// Non-temporal fill.
    ///
    /// # Safety
    /// As [`Ops::memset_mov`].
    unsafe fn memset_movnt<F: Flusher>(dest: *mut u8, value: u8, len: usize);
}

/// Whether no explicit flag decides and the length reaches the non-temporal threshold.
#[inline(always)]
fn use_movnt(flags: MemFlags, len: usize) -> bool {
    if flags.intersects(MemFlags::WC | MemFlags::NONTEMPORAL) {
        true
    } else if flags.intersects(MemFlags::WB | MemFlags::TEMPORAL) {
        false
    } else {
        len >= persist::cpu().movnt_threshold()
    }
}

/// The non-eADR dispatch (CACHE_LINE and PAGE) without the final drain.
///
/// # Safety
/// As [`Ops::memmove_mov`].
#[inline(always)]
unsafe fn memmove_nodrain<I: Ops, F: Flusher>(dest: *mut u8, src: *const u8, len: usize, flags: MemFlags) {
    // SAFETY: forwarded from the caller (all three calls).
    unsafe {
        if flags.contains(MemFlags::NOFLUSH) {
            I::memmove_mov::<NoFlush>(dest, src, len)
        } else if use_movnt(flags, len) {
            I::memmove_movnt::<F>(dest, src, len)
        } else {
            I::memmove_mov::<F>(dest, src, len)
        }
    }
}

/// The eADR dispatch (BYTE): no size heuristic, `WC` alone stays temporal, nothing flushed.
///
/// # Safety
/// As [`Ops::memmove_mov`].
#[inline(always)]
unsafe fn memmove_nodrain_eadr<I: Ops>(dest: *mut u8, src: *const u8, len: usize, flags: MemFlags) {
    // SAFETY: forwarded from the caller (all three calls).
    unsafe {
        if flags.contains(MemFlags::NOFLUSH) {
            I::memmove_mov::<NoFlush>(dest, src, len)
        } else if flags.contains(MemFlags::NONTEMPORAL) {
            I::memmove_movnt::<Empty>(dest, src, len)
        } else {
            I::memmove_mov::<Empty>(dest, src, len)
        }
    }
}

/// # Safety
/// As [`Ops::memset_mov`].
#[inline(always)]
unsafe fn memset_nodrain<I: Ops, F: Flusher>(dest: *mut u8, value: u8, len: usize, flags: MemFlags) {
    // SAFETY: forwarded from the caller (all three calls).
    unsafe {
        if flags.contains(MemFlags::NOFLUSH) {
            I::memset_mov::<NoFlush>(dest, value, len)
        } else if use_movnt(flags, len) {
            I::memset_movnt::<F>(dest, value, len)
        } else {
            I::memset_mov::<F>(dest, value, len)
        }
    }
}

/// # Safety
/// As [`Ops::memset_mov`].
#[inline(always)]
unsafe fn memset_nodrain_eadr<I: Ops>(dest: *mut u8, value: u8, len: usize, flags: MemFlags) {
    // SAFETY: forwarded from the caller (all three calls).
    unsafe {
        if flags.contains(MemFlags::NOFLUSH) {
            I::memset_mov::<NoFlush>(dest, value, len)
        } else if flags.contains(MemFlags::NONTEMPORAL) {
            I::memset_movnt::<Empty>(dest, value, len)
        } else {
            I::memset_mov::<Empty>(dest, value, len)
        }
    }
}

#[inline(always)]
fn drains(flags: MemFlags) -> bool {
    !flags.intersects(MemFlags::NODRAIN | MemFlags::NOFLUSH)
}

/// CACHE_LINE memmove.
///
/// # Safety
/// As [`MemmoveFn`].
unsafe fn memmove_cl<I: Ops, F: Flusher>(dest: *mut u8, src: *const u8, len: usize, flags: MemFlags) -> io::Result<()> {
    if len == 0 || std::ptr::eq(dest, src) {
        return Ok(());
    }
    // SAFETY: len > 0; the ranges are valid per the caller.
    unsafe { memmove_nodrain::<I, F>(dest, src, len, flags) };
    if drains(flags) {
        persist::fence();
    }
    Ok(())
}

/// BYTE memmove.
///
/// # Safety
/// As [`MemmoveFn`].
unsafe fn memmove_byte<I: Ops>(dest: *mut u8, src: *const u8, len: usize, flags: MemFlags) -> io::Result<()> {
    if len == 0 || std::ptr::eq(dest, src) {
        return Ok(());
    }
    // SAFETY: len > 0; the ranges are valid per the caller.
    unsafe { memmove_nodrain_eadr::<I>(dest, src, len, flags) };
    if drains(flags) {
        persist::fence();
    }
    Ok(())
}

/// PAGE memmove: the CACHE_LINE copy without NODRAIN, then a fence (ordering any
/// non-temporal stores before the kernel reads the pages) and msync, unless NOFLUSH.
///
/// # Safety
/// As [`MemmoveFn`].
unsafe fn memmove_page<I: Ops, F: Flusher>(
    dest: *mut u8,
    src: *const u8,
    len: usize,
    flags: MemFlags,
) -> io::Result<()> {
    if len != 0 && !std::ptr::eq(dest, src) {
        // SAFETY: len > 0; the ranges are valid per the caller.
        unsafe { memmove_nodrain::<I, F>(dest, src, len, flags - MemFlags::NODRAIN) };
    }
    if flags.contains(MemFlags::NOFLUSH) {
        return Ok(());
    }
    persist::fence();
    // SAFETY: the destination lies inside a live mapping per the caller.
    unsafe { persist::msync_pages(dest, len) }
}

/// CACHE_LINE memset.
///
/// # Safety
/// As [`MemsetFn`].
unsafe fn memset_cl<I: Ops, F: Flusher>(dest: *mut u8, value: u8, len: usize, flags: MemFlags) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: len > 0; the range is valid per the caller.
    unsafe { memset_nodrain::<I, F>(dest, value, len, flags) };
    if drains(flags) {
        persist::fence();
    }
    Ok(())
}

/// BYTE memset.
///
/// # Safety
/// As [`MemsetFn`].
unsafe fn memset_byte<I: Ops>(dest: *mut u8, value: u8, len: usize, flags: MemFlags) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: len > 0; the range is valid per the caller.
    unsafe { memset_nodrain_eadr::<I>(dest, value, len, flags) };
    if drains(flags) {
        persist::fence();
    }
    Ok(())
}

/// PAGE memset.
///
/// # Safety
/// As [`MemsetFn`].
unsafe fn memset_page<I: Ops, F: Flusher>(dest: *mut u8, value: u8, len: usize, flags: MemFlags) -> io::Result<()> {
    if len != 0 {
        // SAFETY: len > 0; the range is valid per the caller.
        unsafe { memset_nodrain::<I, F>(dest, value, len, flags - MemFlags::NODRAIN) };
    }
    if flags.contains(MemFlags::NOFLUSH) {
        return Ok(());
    }
    persist::fence();
    // SAFETY: the destination lies inside a live mapping per the caller.
    unsafe { persist::msync_pages(dest, len) }
}

/// The copy functions of this process, indexed by granularity (BYTE, CACHE_LINE, PAGE).
struct Table {
    memmove: [MemmoveFn; 3],
    memset: [MemsetFn; 3],
}

fn build<I: Ops, F: Flusher>() -> Table {
    Table {
        memmove: [memmove_byte::<I>, memmove_cl::<I, F>, memmove_page::<I, F>],
        memset: [memset_byte::<I>, memset_cl::<I, F>, memset_page::<I, F>],
    }
}

#[cfg(target_arch = "x86_64")]
fn build_with<I: Ops>() -> Table {
    use crate::persist::{Clflush, Clflushopt, Clwb, FlushInstruction};
    match persist::flush_instruction() {
        FlushInstruction::Clwb => build::<I, Clwb>(),
        FlushInstruction::Clflushopt => build::<I, Clflushopt>(),
        _ => build::<I, Clflush>(),
    }
}

#[cfg(not(target_arch = "x86_64"))]
// Compiled only on other architectures: cargo-mutants, run on x86_64, could not test it.
// (`windows` never holds for this Linux-only crate; the attribute is for cargo-mutants alone.)
#[cfg_attr(windows, mutants::skip)]
fn build_with<I: Ops>() -> Table {
    build::<I, persist::Detected>()
}

#[cfg(target_arch = "x86_64")]
fn build_table() -> Table {
    use x86_64::{Avx, Avx512, Movdir64b, Sse2};
    let cpu = persist::cpu();
    match (cpu.copy_isa(), cpu.movdir64b()) {
        (CopyIsa::Avx512f, false) => build_with::<Avx512>(),
        (CopyIsa::Avx512f, true) => build_with::<Movdir64b<Avx512>>(),
        (CopyIsa::Avx, false) => build_with::<Avx>(),
        (CopyIsa::Avx, true) => build_with::<Movdir64b<Avx>>(),
        (CopyIsa::Sse2, false) => build_with::<Sse2>(),
        (CopyIsa::Sse2, true) => build_with::<Movdir64b<Sse2>>(),
        (CopyIsa::Libc, _) => build_with::<generic::Libc>(),
        (CopyIsa::Generic, _) => build_with::<generic::Generic>(),
    }
}

#[cfg(not(target_arch = "x86_64"))]
// Compiled only on other architectures: cargo-mutants, run on x86_64, could not test it.
// (`windows` never holds for this Linux-only crate; the attribute is for cargo-mutants alone.)
#[cfg_attr(windows, mutants::skip)]
fn build_table() -> Table {
    match persist::copy_isa() {
        CopyIsa::Libc => build_with::<generic::Libc>(),
        _ => build_with::<generic::Generic>(),
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build_table)
}

fn index(granularity: Granularity) -> usize {
    match granularity {
        Granularity::Byte => 0,
        Granularity::CacheLine => 1,
        Granularity::Page => 2,
    }
}

fn msync_error(err: io::Error) -> Error {
    Error::os(errno_of(err), "msync")
}

/// The errno of a failed msync, as a `Copy` value a guarded routine can return.
fn errno_of(err: io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}

/// Copies, deep flush and function-pointer getters.
impl Mapping {
    /// Copies `src` to `dest_offset` and makes it durable as `flags` says
    /// (`pmem2_memcpy_fn`); see the [module](crate::mem) table for the exact dispatch.
    ///
    /// ```
    /// use pmem2::{Config, Granularity, Mapping, MemFlags, Source};
    /// let file = tempfile::tempfile()?;
    /// file.set_len(1 << 20)?;
    /// let mut config = Config::new();
    /// config.set_required_store_granularity(Granularity::Page);
    /// let map = Mapping::new(&config, &Source::from_fd(&file)?)?;
    /// map.memcpy(4096, b"persistent", MemFlags::NONTEMPORAL)?;
    /// let mut back = [0u8; 10];
    /// map.read(4096, &mut back)?;
    /// assert_eq!(&back, b"persistent");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::NoAccess`] without WRITE protection; [`ErrorKind::LengthOutOfRange`]
    /// outside the mapping; [`ErrorKind::Os`] if the msync of a PAGE mapping fails;
    /// [`ErrorKind::IoFail`] on a page the file no longer covers or a poisoned line, in the
    /// mapping or in `src` (see
    /// [`Mapping`](Mapping#when-the-file-changes-under-the-mapping)).
    #[doc(alias = "pmem2_get_memcpy_fn")]
    pub fn memcpy(&self, dest_offset: usize, src: &[u8], flags: MemFlags) -> Result<()> {
        self.copy_in("memcpy", dest_offset, src, flags)
    }

    /// As [`Mapping::memcpy`] (both are memmove-safe); `src` may even be a view of this
    /// mapping obtained with `unsafe` code. Safe code copies within a mapping with
    /// [`Mapping::memmove_within`].
    ///
    /// # Errors
    /// As [`Mapping::memcpy`].
    #[doc(alias = "pmem2_get_memmove_fn")]
    pub fn memmove(&self, dest_offset: usize, src: &[u8], flags: MemFlags) -> Result<()> {
        self.copy_in("memmove", dest_offset, src, flags)
    }

    fn copy_in(&self, what: &str, dest_offset: usize, src: &[u8], flags: MemFlags) -> Result<()> {
        self.require(Protection::WRITE, "copy into")?;
        let (len, src) = (src.len(), src.as_ptr());
        let dest = self.checked_range(dest_offset, len)?;
        let f = table().memmove[index(self.store_granularity())];
        self.guard(what, [Span::new(dest, len), Span::new(src, len)], move || {
            // SAFETY: `dest..dest+len` is inside this live mapping (checked) and writable
            // (protection checked); `src` is a borrowed slice, readable for the call.
            unsafe { f(dest, src, len, flags) }.map_err(errno_of)
        })?
        .map_err(|errno| Error::os(errno, "msync"))
    }

    /// Copies `len` bytes from `src_offset` to `dest_offset` of this mapping; the ranges may
    /// overlap.
    ///
    /// # Errors
    /// [`ErrorKind::NoAccess`] without READ and WRITE protection;
    /// [`ErrorKind::LengthOutOfRange`] if either range leaves the mapping; [`ErrorKind::Os`]
    /// if the msync of a PAGE mapping fails; [`ErrorKind::IoFail`] as for
    /// [`Mapping::memcpy`].
    pub fn memmove_within(&self, dest_offset: usize, src_offset: usize, len: usize, flags: MemFlags) -> Result<()> {
        self.require(Protection::READ | Protection::WRITE, "copy within")?;
        let dest = self.checked_range(dest_offset, len)?;
        let src = self.checked_range(src_offset, len)?.cast_const();
        let f = table().memmove[index(self.store_granularity())];
        self.guard(
            "memmove_within",
            [Span::new(dest, len), Span::new(src, len)],
            move || {
                // SAFETY: both ranges are inside this live mapping (checked), which is readable
                // and writable (checked); the function is memmove-safe for overlap.
                unsafe { f(dest, src, len, flags) }.map_err(errno_of)
            },
        )?
        .map_err(|errno| Error::os(errno, "msync"))
    }

    /// Fills `len` bytes at `dest_offset` with `value` (`pmem2_memset_fn`).
    ///
    /// # Errors
    /// As [`Mapping::memcpy`].
    #[doc(alias = "pmem2_get_memset_fn")]
    pub fn memset(&self, dest_offset: usize, value: u8, len: usize, flags: MemFlags) -> Result<()> {
        self.require(Protection::WRITE, "fill")?;
        let dest = self.checked_range(dest_offset, len)?;
        let f = table().memset[index(self.store_granularity())];
        self.guard("memset", [Span::new(dest, len), Span::NONE], move || {
            // SAFETY: the range is inside this live, writable mapping (checked).
            unsafe { f(dest, value, len, flags) }.map_err(errno_of)
        })?
        .map_err(|errno| Error::os(errno, "msync"))
    }

    /// Flushes `[offset, offset + len)` to the deepest persistence domain
    /// (`pmem2_deep_flush`): on a regular file `msync` of its pages; on device DAX a
    /// persist followed by writing `1` to the region's `deep_flush` sysfs file (skipped when
    /// it reads `0` or the kernel gives the region none). PAGE mappings need nothing more than
    /// [`Mapping::persist`] and return at once, as in libpmem2.
    ///
    /// # Errors
    /// [`ErrorKind::DeepFlushRange`] if the range leaves the mapping;
    /// [`ErrorKind::NotSupported`] for an anonymous mapping; [`ErrorKind::Os`] if msync or
    /// the sysfs access fails (libpmem2 ignores sysfs failures);
    /// [`ErrorKind::DaxRegionNotFound`] if the device's region cannot be found;
    /// [`ErrorKind::IoFail`] as for [`Mapping::persist`].
    #[doc(alias = "pmem2_deep_flush")]
    pub fn deep_flush(&self, offset: usize, len: usize) -> Result<()> {
        let start = match offset.checked_add(len) {
            Some(end) if end <= self.size() => self.address().wrapping_add(offset),
            _ => {
                return Err(Error::new(
                    ErrorKind::DeepFlushRange,
                    format!(
                        "requested deep flush range at offset {offset} of length {len} exceeds the mapping size {}",
                        self.size()
                    ),
                ))
            }
        };
        let Some(file_type) = self.file_type() else {
            return Err(Error::new(
                ErrorKind::NotSupported,
                "deep flush is not supported for anonymous mappings",
            ));
        };
        if self.store_granularity() == Granularity::Page {
            return Ok(());
        }
        match file_type {
            FileType::Regular => {
                // SAFETY: the range is inside this live mapping (checked above).
                unsafe { persist::msync_pages(start, len) }.map_err(msync_error)?;
                self.probe_end("deep_flush", start, len)
            }
            FileType::DeviceDax => {
                self.persist(offset, len)?;
                let (major, minor) = self.device_numbers();
                let sysfs = Sysfs::from_env();
                let region = sysfs.device_dax_region(major, minor)?;
                if sysfs.region_deep_flush(region)? {
                    counters::count_deep_flush_write();
                }
                Ok(())
            }
        }
    }

    /// The persist function of this mapping (`pmem2_get_persist_fn`), chosen once from its
    /// granularity and the CPU, for hot loops that should not pay for bounds checks:
    ///
    /// ```
    /// # use pmem2::{Config, Granularity, Mapping, Source};
    /// # let file = tempfile::tempfile()?;
    /// # file.set_len(1 << 20)?;
    /// # let mut config = Config::new();
    /// # config.set_required_store_granularity(Granularity::Page);
    /// let map = Mapping::new(&config, &Source::from_fd(&file)?)?;
    /// let persist = map.persist_fn();
    /// map.write(0, b"x")?;
    /// // SAFETY: the range is inside `map`, which outlives the call.
    /// unsafe { persist(map.address(), 1) }?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// PAGE: msync, returning `Err` instead of aborting. CACHE_LINE: flush every line + one
    /// fence. BYTE (and CACHE_LINE without any access): a fence.
    ///
    /// The function pointers are not guarded: a SIGBUS inside them (a page the file no
    /// longer covers, a poisoned line) has the kernel's default effect, as any raw access
    /// has, where [`Mapping::persist`] and the other methods return
    /// [`ErrorKind::IoFail`] (see [`Mapping`](Mapping#when-the-file-changes-under-the-mapping)).
    /// A PAGE persist function does not detect truncation at all (msync succeeds).
    #[doc(alias = "pmem2_get_persist_fn")]
    pub fn persist_fn(&self) -> PersistFn {
        persist::functions_for(self.store_granularity(), self.flushable()).0
    }

    /// The flush function (`pmem2_get_flush_fn`); the same as [`Mapping::persist_fn`] for PAGE.
    ///
    /// Not guarded against SIGBUS, like every function pointer (see [`Mapping::persist_fn`]).
    #[doc(alias = "pmem2_get_flush_fn")]
    pub fn flush_fn(&self) -> FlushFn {
        persist::functions_for(self.store_granularity(), self.flushable()).1
    }

    /// The drain function (`pmem2_get_drain_fn`): a fence, or nothing for PAGE.
    #[doc(alias = "pmem2_get_drain_fn")]
    pub fn drain_fn(&self) -> DrainFn {
        persist::functions_for(self.store_granularity(), self.flushable()).2
    }

    /// The memcpy function (`pmem2_get_memcpy_fn`); identical to [`Mapping::memmove_fn`].
    ///
    /// Not guarded against SIGBUS, like every function pointer (see [`Mapping::persist_fn`]).
    #[doc(alias = "pmem2_get_memcpy_fn")]
    pub fn memcpy_fn(&self) -> MemcpyFn {
        table().memmove[index(self.store_granularity())]
    }

    /// The memmove function (`pmem2_get_memmove_fn`).
    ///
    /// Not guarded against SIGBUS, like every function pointer (see [`Mapping::persist_fn`]).
    #[doc(alias = "pmem2_get_memmove_fn")]
    pub fn memmove_fn(&self) -> MemmoveFn {
        table().memmove[index(self.store_granularity())]
    }

    /// The memset function (`pmem2_get_memset_fn`).
    ///
    /// Not guarded against SIGBUS, like every function pointer (see [`Mapping::persist_fn`]).
    #[doc(alias = "pmem2_get_memset_fn")]
    pub fn memset_fn(&self) -> MemsetFn {
        table().memset[index(self.store_granularity())]
    }

    fn flushable(&self) -> bool {
        self.protection().intersects(Protection::READ | Protection::WRITE)
    }
}

#[cfg(test)]
mod tests;
