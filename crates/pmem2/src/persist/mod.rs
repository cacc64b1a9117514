//! Making stores durable: cache-line flush and fence instructions, and the copy
//! implementation, chosen once per process.
//!
//! The CPU layer (`x86_64.rs`, `aarch64.rs`, `generic.rs`) provides the raw instructions and
//! the feature detection; this file reads libpmem2's environment overrides, decides once
//! ([`cpu`]) and provides the persist/flush/drain functions that [`Mapping`](crate::Mapping)
//! hands out as plain function pointers.
//!
//! # Safety
//! The functions behind [`PersistFn`] and [`FlushFn`] flush or `msync` a caller-provided
//! range; their contracts are stated on the type aliases. Every other function here is safe.
#![allow(unsafe_code)]

use crate::config::Granularity;
use std::io;
use std::sync::OnceLock;

// One plain `mod` per architecture (no `#[path]`), so that tools that read the module tree
// without evaluating cfg, such as cargo-mutants, find each file.
#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod generic;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "aarch64")]
use aarch64 as arch;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use generic as arch;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

#[cfg(target_arch = "x86_64")]
pub(crate) use arch::{Clflush, Clflushopt, Clwb};
#[cfg(not(target_arch = "x86_64"))]
pub(crate) use dynamic::Detected;

/// The size of a cache line, the unit of a flush.
pub const CACHE_LINE_SIZE: usize = 64;

/// The default of `PMEM_MOVNT_THRESHOLD`: copies of at least this many bytes use
/// non-temporal stores when no flag says otherwise.
pub const DEFAULT_MOVNT_THRESHOLD: usize = 256;

/// The instruction used to write a cache line back towards persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FlushInstruction {
    /// x86 CLWB: writes back and may keep the line cached.
    Clwb,
    /// x86 CLFLUSHOPT: writes back and evicts, weakly ordered.
    Clflushopt,
    /// x86 CLFLUSH: writes back and evicts, strongly ordered.
    Clflush,
    /// aarch64 `DC CVAP`: clean to the point of persistence.
    DcCvap,
    /// aarch64 `DC CVAC`: clean to the point of coherency.
    DcCvac,
    /// No cache flush instruction is known for this CPU.
    None,
}

impl FlushInstruction {
    /// The lower-case mnemonic: `"clwb"`, `"clflushopt"`, `"clflush"`, `"dc cvap"`, `"dc cvac"`, `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            FlushInstruction::Clwb => "clwb",
            FlushInstruction::Clflushopt => "clflushopt",
            FlushInstruction::Clflush => "clflush",
            FlushInstruction::DcCvap => "dc cvap",
            FlushInstruction::DcCvac => "dc cvac",
            FlushInstruction::None => "none",
        }
    }
}

/// The implementation behind `memcpy`/`memmove`/`memset` (libpmem2's `memmove_nodrain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CopyIsa {
    /// 64-byte AVX-512F loads and (non-temporal) stores.
    Avx512f,
    /// 32-byte AVX loads and (non-temporal) stores.
    Avx,
    /// 16-byte SSE2 loads and (non-temporal) stores (every x86_64 CPU).
    Sse2,
    /// Portable 8-byte stores, never non-temporal (`PMEM_NO_MOVNT=1`, or no SIMD code for
    /// this architecture).
    Generic,
    /// The C library's `memmove`/`memset` followed by a flush (`PMEM_NO_MOVNT=1` together
    /// with a nonzero `PMEM_NO_GENERIC_MEMCPY`).
    Libc,
}

impl CopyIsa {
    /// The lower-case name used in libpmem2's variant names: `"avx512f"`, `"avx"`, `"sse2"`,
    /// `"generic"`, `"libc"`.
    pub fn name(self) -> &'static str {
        match self {
            CopyIsa::Avx512f => "avx512f",
            CopyIsa::Avx => "avx",
            CopyIsa::Sse2 => "sse2",
            CopyIsa::Generic => "generic",
            CopyIsa::Libc => "libc",
        }
    }
}

/// Everything decided once per process from the CPU and the environment.
///
/// ```
/// let cpu = pmem2::persist::cpu();
/// println!("flush {}, copy {}, NT threshold {}", cpu.flush_instruction().name(),
///          cpu.copy_isa().name(), cpu.movnt_threshold());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuConfig {
    flush: FlushInstruction,
    copy: CopyIsa,
    movdir64b: bool,
    movnt_threshold: usize,
    wc_workaround: bool,
}

impl CpuConfig {
    /// The cache-line flush instruction (CLWB, else CLFLUSHOPT, else CLFLUSH on x86_64).
    pub fn flush_instruction(&self) -> FlushInstruction {
        self.flush
    }

    /// The copy implementation used for temporal stores (and for non-temporal ones unless
    /// [`CpuConfig::movdir64b`]).
    pub fn copy_isa(&self) -> CopyIsa {
        self.copy
    }

    /// Whether non-temporal copies use MOVDIR64B (opt-in with `PMEM_MOVDIR64B`).
    pub fn movdir64b(&self) -> bool {
        self.movdir64b
    }

    /// Copies of at least this many bytes use non-temporal stores when no flag decides.
    pub fn movnt_threshold(&self) -> usize {
        self.movnt_threshold
    }

    /// Whether SSE2/AVX non-temporal loops fence every 768 bytes (Intel's write-combining
    /// buffer workaround; on by default on GenuineIntel CPUs).
    pub fn wc_workaround(&self) -> bool {
        self.wc_workaround
    }
}

/// libpmem2's environment overrides, parsed with libpmem2's exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EnvOverrides {
    /// `PMEM_NO_CLWB` is exactly `"1"`.
    pub no_clwb: bool,
    /// `PMEM_NO_CLFLUSHOPT` is exactly `"1"`.
    pub no_clflushopt: bool,
    /// `PMEM_NO_MOVNT` is exactly `"1"`.
    pub no_movnt: bool,
    /// `PMEM_NO_GENERIC_MEMCPY` parses (`atoll`) as nonzero.
    pub no_generic_memcpy: bool,
    /// `PMEM_MOVNT_THRESHOLD` parsed with `atoll`; negative values are ignored.
    pub movnt_threshold: Option<usize>,
    /// `PMEM_AVX` is exactly `"0"`.
    pub no_avx: bool,
    /// `PMEM_AVX512F` is exactly `"0"`.
    pub no_avx512f: bool,
    /// `PMEM_MOVDIR64B` is set and is not `"0"`.
    pub movdir64b: bool,
    /// `PMEM_WC_WORKAROUND`: `"1"` → on, `"0"` → off, anything else → CPU default.
    pub wc_workaround: Option<bool>,
}

impl EnvOverrides {
    /// Reads the process environment.
    pub(crate) fn from_env() -> EnvOverrides {
        EnvOverrides::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Parses the overrides from any name → value lookup (tests pass a map).
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> EnvOverrides {
        let is = |name: &str, value: &str| get(name).is_some_and(|v| v == value);
        EnvOverrides {
            no_clwb: is("PMEM_NO_CLWB", "1"),
            no_clflushopt: is("PMEM_NO_CLFLUSHOPT", "1"),
            no_movnt: is("PMEM_NO_MOVNT", "1"),
            no_generic_memcpy: get("PMEM_NO_GENERIC_MEMCPY").is_some_and(|v| atoll(&v) != 0),
            movnt_threshold: get("PMEM_MOVNT_THRESHOLD").and_then(|v| usize::try_from(atoll(&v)).ok()),
            no_avx: is("PMEM_AVX", "0"),
            no_avx512f: is("PMEM_AVX512F", "0"),
            movdir64b: get("PMEM_MOVDIR64B").is_some_and(|v| v != "0"),
            wc_workaround: match get("PMEM_WC_WORKAROUND").as_deref() {
                Some("1") => Some(true),
                Some("0") => Some(false),
                _ => None,
            },
        }
    }
}

/// C's `atoll` (glibc `strtoll(s, NULL, 10)`): leading whitespace, an optional sign, then
/// decimal digits up to the first other character; no digits gives 0, overflow saturates.
pub(crate) fn atoll(text: &str) -> i64 {
    let s = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(b - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
    }
    value
}

/// What the CPU layer detected (SIMD copy support already checked against the OS state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuFeatures {
    pub clflushopt: bool,
    pub clwb: bool,
    /// AVX reported by CPUID *and* the YMM state enabled by the OS (XGETBV).
    pub avx: bool,
    /// AVX-512F reported by CPUID *and* the ZMM/opmask state enabled by the OS.
    pub avx512f: bool,
    pub movdir64b: bool,
    pub genuine_intel: bool,
    /// The architecture has SIMD copy routines at all (x86_64 only).
    pub simd: bool,
    /// The flush instruction of a non-x86 architecture.
    pub other_flush: Option<FlushInstruction>,
}

/// libpmem2's decision (`pmem_cpuinfo_to_funcs` + `pmem2_persist_init`) from detected
/// features and overrides.
pub(crate) fn decide(f: &CpuFeatures, env: &EnvOverrides) -> CpuConfig {
    let flush = match f.other_flush {
        Some(other) => other,
        None if f.clwb && !env.no_clwb => FlushInstruction::Clwb,
        None if f.clflushopt && !env.no_clflushopt => FlushInstruction::Clflushopt,
        // CLFLUSH is part of SSE2, which every x86_64 CPU has.
        None => FlushInstruction::Clflush,
    };
    let simd = if f.simd && !env.no_movnt {
        if f.avx512f && !env.no_avx512f {
            Some(CopyIsa::Avx512f)
        } else if f.avx && !env.no_avx {
            Some(CopyIsa::Avx)
        } else {
            Some(CopyIsa::Sse2)
        }
    } else {
        None
    };
    let copy = simd.unwrap_or(if env.no_generic_memcpy {
        CopyIsa::Libc
    } else {
        CopyIsa::Generic
    });
    CpuConfig {
        flush,
        copy,
        movdir64b: simd.is_some() && f.movdir64b && env.movdir64b,
        movnt_threshold: env.movnt_threshold.unwrap_or(DEFAULT_MOVNT_THRESHOLD),
        wc_workaround: env.wc_workaround.unwrap_or(f.genuine_intel),
    }
}

/// The CPU configuration of this process, decided on first use from CPUID/XGETBV (or
/// `AT_HWCAP`) and libpmem2's variables, each with its exact accepted values:
///
/// | Variable | Accepted value | Effect |
/// |---|---|---|
/// | `PMEM_NO_CLWB` | exactly `1` | do not use CLWB |
/// | `PMEM_NO_CLFLUSHOPT` | exactly `1` | do not use CLFLUSHOPT |
/// | `PMEM_NO_MOVNT` | exactly `1` | no SIMD code: [`CopyIsa::Generic`] |
/// | `PMEM_NO_GENERIC_MEMCPY` | `atoll` ≠ 0 | with `PMEM_NO_MOVNT`: [`CopyIsa::Libc`] |
/// | `PMEM_MOVNT_THRESHOLD` | `atoll` ≥ 0 | non-temporal threshold (default 256) |
/// | `PMEM_AVX` | `0` | skip AVX |
/// | `PMEM_AVX512F` | `0` | skip AVX-512F |
/// | `PMEM_MOVDIR64B` | set, not `0` | MOVDIR64B for non-temporal copies |
/// | `PMEM_WC_WORKAROUND` | `1` / `0` | force the 768-byte WC fence on / off |
///
/// Unlike libpmem2, AVX and AVX-512 are used only when XGETBV shows the OS saves their
/// register state.
pub fn cpu() -> &'static CpuConfig {
    static CHOSEN: OnceLock<CpuConfig> = OnceLock::new();
    CHOSEN.get_or_init(|| decide(&arch::features(), &EnvOverrides::from_env()))
}

/// What the CPU offers, before the environment overrides (tests exercise every variant the
/// CPU can run).
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn arch_features() -> CpuFeatures {
    arch::features()
}

/// The flush instruction this process uses (see [`cpu`]).
pub fn flush_instruction() -> FlushInstruction {
    cpu().flush
}

/// The copy implementation this process uses (see [`cpu`]).
pub fn copy_isa() -> CopyIsa {
    cpu().copy
}

/// How a copy variant treats the cache lines it wrote (for path counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushMode {
    /// `NOFLUSH` was requested: no flush at all.
    NoFlush,
    /// eADR (BYTE granularity): stores are persistent once globally visible; no flush.
    Empty,
    /// Each written line is flushed with this instruction.
    Flush(FlushInstruction),
}

/// A way of flushing the lines a copy wrote, chosen at compile time so that copy loops are
/// specialised per instruction (libpmem2's `noflush` / `empty` / `clwb`… variants).
pub(crate) trait Flusher {
    /// Whether non-temporal stores need an SFENCE inside the copy, because no drain follows
    /// that would order them (libpmem2's `barrier_after_ntstores`).
    // Only the x86_64 copy loops make non-temporal stores.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    const FENCE_AFTER_NT: bool;
    /// What the variant does, for counters.
    fn mode() -> FlushMode;
    /// Flushes the line containing `addr`.
    fn flush_line(addr: *const u8);
    /// Flushes every line overlapping `[ptr, ptr + len)`.
    #[inline(always)]
    fn flush_range(ptr: *const u8, len: usize) {
        if len == 0 {
            return;
        }
        let mut line = (ptr as usize) & !(CACHE_LINE_SIZE - 1);
        let end = ptr as usize + len;
        while line < end {
            Self::flush_line(line as *const u8);
            line += CACHE_LINE_SIZE;
        }
    }
}

/// The `NOFLUSH` variants: temporal stores left in the cache.
pub(crate) struct NoFlush;
impl Flusher for NoFlush {
    const FENCE_AFTER_NT: bool = true;
    fn mode() -> FlushMode {
        FlushMode::NoFlush
    }
    #[inline(always)]
    fn flush_line(_addr: *const u8) {}
    #[inline(always)]
    fn flush_range(_ptr: *const u8, _len: usize) {}
}

/// The eADR variants: nothing to flush.
pub(crate) struct Empty;
impl Flusher for Empty {
    const FENCE_AFTER_NT: bool = true;
    fn mode() -> FlushMode {
        FlushMode::Empty
    }
    #[inline(always)]
    fn flush_line(_addr: *const u8) {}
    #[inline(always)]
    fn flush_range(_ptr: *const u8, _len: usize) {}
}

#[cfg(not(target_arch = "x86_64"))]
// Compiled only on other architectures: cargo-mutants, run on x86_64, could not test it.
// (`windows` never holds for this Linux-only crate; the attribute is for cargo-mutants alone.)
#[cfg_attr(windows, mutants::skip)]
mod dynamic {
    use super::{arch, cpu, FlushMode, Flusher};
    /// Flushes with the instruction detected at run time (architectures without
    /// specialised copy loops).
    pub(crate) struct Detected;
    impl Flusher for Detected {
        const FENCE_AFTER_NT: bool = true;
        fn mode() -> FlushMode {
            FlushMode::Flush(cpu().flush)
        }
        fn flush_line(addr: *const u8) {
            arch::flush_range(cpu().flush, addr as usize, addr as usize + 1);
        }
        fn flush_range(ptr: *const u8, len: usize) {
            if len != 0 {
                arch::flush_range(cpu().flush, (ptr as usize) & !63, ptr as usize + len);
            }
        }
    }
}

/// Writes back every cache line overlapping `[ptr, ptr+len)` with the chosen instruction.
/// Does not fence; call [`fence`] (drain) afterwards.
#[inline]
pub(crate) fn flush_lines(ptr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    crate::mem::counters::count_flush();
    let start = (ptr as usize) & !(CACHE_LINE_SIZE - 1);
    arch::flush_range(flush_instruction(), start, ptr as usize + len);
}

/// Orders earlier flushes and non-temporal stores before later stores (SFENCE on x86_64).
#[inline]
pub(crate) fn fence() {
    crate::mem::counters::count_fence();
    arch::store_fence();
}

/// `msync(MS_SYNC)` of every page overlapping `[ptr, ptr + len)`, as an `io::Result`.
///
/// # Safety
/// The pages overlapping the range must belong to a mapping of this process that stays
/// mapped during the call (msync neither reads nor writes them).
pub(crate) unsafe fn msync_pages(ptr: *const u8, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    crate::mem::counters::count_msync();
    let page = crate::sys::page_size();
    let from = (ptr as usize) & !(page - 1);
    let to = ptr as usize + len;
    // SAFETY: `from` is page aligned; the caller guarantees the pages are a live mapping.
    unsafe { crate::sys::msync(from as *const u8, to - from) }.map_err(io::Error::from)
}

/// A persist (or flush) function for one mapping: `persist(ptr, len)` makes the stores to
/// `[ptr, ptr + len)` durable (`pmem2_persist_fn`).
///
/// Unlike libpmem2, the PAGE-granularity function reports an `msync` failure as `Err`
/// instead of aborting; the CACHE_LINE and BYTE functions always return `Ok(())`. An
/// `io::Result<()>` is one register wide, so the fast paths pay nothing for it.
///
/// # Safety
/// `[ptr, ptr + len)` must lie inside a live mapping whose function this is (obtained from
/// [`Mapping::persist_fn`](crate::Mapping::persist_fn) or
/// [`Mapping::flush_fn`](crate::Mapping::flush_fn)), and the mapping must not be unmapped
/// during the call.
pub type PersistFn = unsafe fn(ptr: *const u8, len: usize) -> io::Result<()>;

/// A flush function (`pmem2_flush_fn`): the first half of persist; a [`DrainFn`] completes
/// it. Same signature and safety contract as [`PersistFn`].
pub type FlushFn = PersistFn;

/// A drain function (`pmem2_drain_fn`): waits for earlier flushes and non-temporal stores.
pub type DrainFn = fn();

/// PAGE: msync of the page-aligned range (persist and flush are the same function).
///
/// # Safety
/// As [`PersistFn`].
pub(crate) unsafe fn persist_pages(ptr: *const u8, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller (the range is inside a live mapping).
    unsafe { msync_pages(ptr, len) }
}

/// CACHE_LINE persist with flusher `F`: flush each line, then one fence.
///
/// # Safety
/// As [`PersistFn`].
pub(crate) unsafe fn persist_lines<F: Flusher>(ptr: *const u8, len: usize) -> io::Result<()> {
    crate::mem::counters::count_flush();
    F::flush_range(ptr, len);
    fence();
    Ok(())
}

/// CACHE_LINE flush with flusher `F`.
///
/// # Safety
/// As [`PersistFn`].
pub(crate) unsafe fn flush_lines_with<F: Flusher>(ptr: *const u8, len: usize) -> io::Result<()> {
    crate::mem::counters::count_flush();
    F::flush_range(ptr, len);
    Ok(())
}

/// BYTE persist, and CACHE_LINE persist of a mapping that cannot be flushed (no access):
/// only a fence.
///
/// # Safety
/// None beyond the [`PersistFn`] signature; the range is not touched.
pub(crate) unsafe fn persist_fence(_ptr: *const u8, _len: usize) -> io::Result<()> {
    fence();
    Ok(())
}

/// BYTE flush: nothing to do.
///
/// # Safety
/// None; the range is not touched.
pub(crate) unsafe fn flush_nop(_ptr: *const u8, _len: usize) -> io::Result<()> {
    Ok(())
}

/// Drain for CACHE_LINE and BYTE mappings.
pub(crate) fn drain_fence() {
    fence();
}

/// Drain for PAGE mappings: msync already waited.
pub(crate) fn drain_nop() {}

/// The persist, flush and drain functions for a mapping of `granularity`; `flushable` is
/// false when the mapping has no read or write access (a flush of it would fault).
pub(crate) fn functions_for(granularity: Granularity, flushable: bool) -> (PersistFn, FlushFn, DrainFn) {
    match granularity {
        Granularity::Page => (persist_pages, persist_pages, drain_nop),
        Granularity::Byte => (persist_fence, flush_nop, drain_fence),
        Granularity::CacheLine if !flushable => (persist_fence, flush_nop, drain_fence),
        Granularity::CacheLine => line_functions(),
    }
}

#[cfg(target_arch = "x86_64")]
fn line_functions() -> (PersistFn, FlushFn, DrainFn) {
    match flush_instruction() {
        FlushInstruction::Clwb => (persist_lines::<Clwb>, flush_lines_with::<Clwb>, drain_fence),
        FlushInstruction::Clflushopt => (persist_lines::<Clflushopt>, flush_lines_with::<Clflushopt>, drain_fence),
        _ => (persist_lines::<Clflush>, flush_lines_with::<Clflush>, drain_fence),
    }
}

#[cfg(not(target_arch = "x86_64"))]
// Compiled only on other architectures: cargo-mutants, run on x86_64, could not test it.
// (`windows` never holds for this Linux-only crate; the attribute is for cargo-mutants alone.)
#[cfg_attr(windows, mutants::skip)]
fn line_functions() -> (PersistFn, FlushFn, DrainFn) {
    (persist_lines::<Detected>, flush_lines_with::<Detected>, drain_fence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvOverrides {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EnvOverrides::from_lookup(|name| map.get(name).cloned())
    }

    fn all_x86() -> CpuFeatures {
        CpuFeatures {
            clflushopt: true,
            clwb: true,
            avx: true,
            avx512f: true,
            movdir64b: true,
            genuine_intel: true,
            simd: true,
            other_flush: None,
        }
    }

    #[test]
    fn atoll_matches_c() {
        for (text, value) in [
            ("", 0),
            ("abc", 0),
            ("12", 12),
            ("  -15", -15),
            ("+7x", 7),
            ("1024 ", 1024),
            ("99999999999999999999999", i64::MAX),
            ("-99999999999999999999999", i64::MIN),
            ("- 3", 0),
        ] {
            assert_eq!(atoll(text), value, "{text:?}");
        }
    }

    #[test]
    fn overrides_use_exact_values() {
        assert!(env(&[("PMEM_NO_CLWB", "1")]).no_clwb);
        for other in ["0", "true", "1 ", " 1", "yes", ""] {
            assert!(!env(&[("PMEM_NO_CLWB", other)]).no_clwb, "{other:?}");
            assert!(!env(&[("PMEM_NO_CLFLUSHOPT", other)]).no_clflushopt);
            assert!(!env(&[("PMEM_NO_MOVNT", other)]).no_movnt);
        }
        assert!(env(&[("PMEM_NO_GENERIC_MEMCPY", "2")]).no_generic_memcpy);
        assert!(env(&[("PMEM_NO_GENERIC_MEMCPY", "1abc")]).no_generic_memcpy);
        assert!(!env(&[("PMEM_NO_GENERIC_MEMCPY", "abc")]).no_generic_memcpy);
        assert_eq!(env(&[("PMEM_MOVNT_THRESHOLD", "1024")]).movnt_threshold, Some(1024));
        assert_eq!(env(&[("PMEM_MOVNT_THRESHOLD", "5")]).movnt_threshold, Some(5));
        assert_eq!(env(&[("PMEM_MOVNT_THRESHOLD", "-15")]).movnt_threshold, None);
        assert_eq!(env(&[("PMEM_MOVNT_THRESHOLD", "junk")]).movnt_threshold, Some(0));
        assert!(env(&[("PMEM_AVX", "0")]).no_avx);
        assert!(!env(&[("PMEM_AVX", "no")]).no_avx);
        assert!(env(&[("PMEM_AVX512F", "0")]).no_avx512f);
        assert!(env(&[("PMEM_MOVDIR64B", "1")]).movdir64b);
        assert!(env(&[("PMEM_MOVDIR64B", "")]).movdir64b);
        assert!(!env(&[("PMEM_MOVDIR64B", "0")]).movdir64b);
        assert!(!env(&[]).movdir64b);
        assert_eq!(env(&[("PMEM_WC_WORKAROUND", "1")]).wc_workaround, Some(true));
        assert_eq!(env(&[("PMEM_WC_WORKAROUND", "0")]).wc_workaround, Some(false));
        assert_eq!(env(&[("PMEM_WC_WORKAROUND", "2")]).wc_workaround, None);
    }

    #[test]
    fn decision_follows_libpmem2_precedence() {
        let f = all_x86();
        let d = decide(&f, &env(&[]));
        assert_eq!(d.flush, FlushInstruction::Clwb);
        assert_eq!(d.copy, CopyIsa::Avx512f);
        assert!(!d.movdir64b, "MOVDIR64B is opt-in");
        assert_eq!(d.movnt_threshold, 256);
        assert!(d.wc_workaround, "GenuineIntel default");
        let d = decide(&f, &env(&[("PMEM_NO_CLWB", "1")]));
        assert_eq!(d.flush, FlushInstruction::Clflushopt);
        let d = decide(&f, &env(&[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")]));
        assert_eq!(d.flush, FlushInstruction::Clflush);
        // NO_CLFLUSHOPT alone keeps CLWB.
        let d = decide(&f, &env(&[("PMEM_NO_CLFLUSHOPT", "1")]));
        assert_eq!(d.flush, FlushInstruction::Clwb);
        assert_eq!(decide(&f, &env(&[("PMEM_AVX512F", "0")])).copy, CopyIsa::Avx);
        assert_eq!(
            decide(&f, &env(&[("PMEM_AVX512F", "0"), ("PMEM_AVX", "0")])).copy,
            CopyIsa::Sse2
        );
        // PMEM_AVX=0 alone does not disable AVX-512F (libpmem2 checks them separately).
        assert_eq!(decide(&f, &env(&[("PMEM_AVX", "0")])).copy, CopyIsa::Avx512f);
        let d = decide(&f, &env(&[("PMEM_NO_MOVNT", "1"), ("PMEM_MOVDIR64B", "1")]));
        assert_eq!((d.copy, d.movdir64b), (CopyIsa::Generic, false));
        let d = decide(&f, &env(&[("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "1")]));
        assert_eq!(d.copy, CopyIsa::Libc);
        // NO_GENERIC_MEMCPY alone does nothing while SIMD code exists.
        assert_eq!(
            decide(&f, &env(&[("PMEM_NO_GENERIC_MEMCPY", "1")])).copy,
            CopyIsa::Avx512f
        );
        // Through the public getter, which nothing else reads on a CPU without MOVDIR64B.
        assert!(decide(&f, &env(&[("PMEM_MOVDIR64B", "1")])).movdir64b());
        assert!(!decide(&f, &env(&[("PMEM_WC_WORKAROUND", "0")])).wc_workaround);
        let amd = CpuFeatures {
            genuine_intel: false,
            movdir64b: false,
            ..f
        };
        assert!(!decide(&amd, &env(&[])).wc_workaround);
        assert!(decide(&amd, &env(&[("PMEM_WC_WORKAROUND", "1")])).wc_workaround);
        assert!(!decide(&amd, &env(&[("PMEM_MOVDIR64B", "1")])).movdir64b);
        // OS without YMM/ZMM state: the arch layer reports avx/avx512f false.
        let no_os = CpuFeatures {
            avx: false,
            avx512f: false,
            ..f
        };
        assert_eq!(decide(&no_os, &env(&[])).copy, CopyIsa::Sse2);
        let arm = CpuFeatures {
            simd: false,
            other_flush: Some(FlushInstruction::DcCvap),
            ..CpuFeatures::default()
        };
        let d = decide(&arm, &env(&[]));
        assert_eq!((d.flush, d.copy), (FlushInstruction::DcCvap, CopyIsa::Generic));
        let d = decide(&arm, &env(&[("PMEM_NO_GENERIC_MEMCPY", "1")]));
        assert_eq!(d.copy, CopyIsa::Libc);
    }

    /// The CPU features the kernel lists in /proc/cpuinfo (`flags` on x86_64, `Features` on
    /// arm64), and the vendor.
    fn proc_cpuinfo() -> (std::collections::HashSet<String>, String) {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    (key.trim() == name).then(|| value.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let flags = field(if cfg!(target_arch = "x86_64") {
            "flags"
        } else {
            "Features"
        });
        (
            flags.split_whitespace().map(str::to_owned).collect(),
            field("vendor_id"),
        )
    }

    /// The process's decision is libpmem2's for the features the kernel reports, which pmem2
    /// reads with CPUID and XGETBV (or AT_HWCAP) instead, and the environment's overrides.
    #[test]
    fn process_decision_follows_proc_cpuinfo() {
        let (flags, vendor) = proc_cpuinfo();
        assert!(!flags.is_empty(), "no feature list in /proc/cpuinfo");
        let has = |f: &str| flags.contains(f);
        let env = EnvOverrides::from_env();
        let chosen = cpu();
        assert!(std::ptr::eq(chosen, cpu()), "decided once");
        let (flush, simd) = if cfg!(target_arch = "x86_64") {
            let flush = if has("clwb") && !env.no_clwb {
                FlushInstruction::Clwb
            } else if has("clflushopt") && !env.no_clflushopt {
                FlushInstruction::Clflushopt
            } else {
                FlushInstruction::Clflush
            };
            // The kernel drops avx and avx512f from the list when it does not save their state.
            let simd = if has("avx512f") && !env.no_avx512f {
                CopyIsa::Avx512f
            } else if has("avx") && !env.no_avx {
                CopyIsa::Avx
            } else {
                CopyIsa::Sse2
            };
            (flush, Some(simd))
        } else if cfg!(target_arch = "aarch64") {
            let flush = if has("dcpop") {
                FlushInstruction::DcCvap
            } else {
                FlushInstruction::DcCvac
            };
            (flush, None)
        } else {
            (FlushInstruction::None, None)
        };
        let copy = match simd {
            Some(isa) if !env.no_movnt => isa,
            _ if env.no_generic_memcpy => CopyIsa::Libc,
            _ => CopyIsa::Generic,
        };
        assert_eq!(chosen.flush_instruction(), flush, "{flags:?}");
        assert_eq!(flush_instruction(), flush);
        assert_eq!(chosen.copy_isa(), copy, "{flags:?}");
        assert_eq!(copy_isa(), copy);
        let movdir64b = simd.is_some() && !env.no_movnt && has("movdir64b") && env.movdir64b;
        assert_eq!(chosen.movdir64b(), movdir64b);
        assert_eq!(chosen.movnt_threshold(), env.movnt_threshold.unwrap_or(256));
        let intel = vendor == "GenuineIntel";
        assert_eq!(chosen.wc_workaround(), env.wc_workaround.unwrap_or(intel), "{vendor}");
    }
}
