//! `platformInfo()`: what this process decided about the CPU and the platform.

use napi_derive::napi;

/// The instructions pmem2 chose for this process and what the platform reports.
#[napi(object)]
pub struct PlatformInfo {
    /// Cache-line flush instruction for CACHE_LINE mappings: `'clwb'`, `'clflushopt'`, `'clflush'`, …
    pub flush_instruction: String,
    /// Copy implementation of memcpy/memmove/memset: `'avx512f'`, `'avx'`, `'sse2'`, `'generic'`, `'libc'`.
    pub copy_isa: String,
    /// Whether non-temporal copies use MOVDIR64B (opt-in with `PMEM_MOVDIR64B`).
    #[napi(js_name = "movdir64b")]
    pub movdir64b: bool,
    /// Copies of at least this many bytes use non-temporal stores when no flag decides.
    pub movnt_threshold: f64,
    /// Whether every nd region reports `cpu_cache` persistence (eADR): BYTE granularity on DAX.
    pub eadr: bool,
    /// The system page size.
    pub page_size: u32,
    /// The sysfs root pmem2 reads (`/sys`, or `PMEM2_SYSFS_ROOT`).
    pub sysfs_root: String,
}

/// What pmem2 chose for this CPU and what the platform reports (eADR, page size).
#[napi(catch_unwind)]
pub fn platform_info() -> PlatformInfo {
    let cpu = pmem2::persist::cpu();
    let sysfs = pmem2::Sysfs::from_env();
    PlatformInfo {
        flush_instruction: cpu.flush_instruction().name().to_owned(),
        copy_isa: cpu.copy_isa().name().to_owned(),
        movdir64b: cpu.movdir64b(),
        movnt_threshold: cpu.movnt_threshold() as f64,
        eadr: sysfs.platform_has_eadr(),
        page_size: pmem2::page_size() as u32,
        sysfs_root: sysfs.root().display().to_string(),
    }
}
