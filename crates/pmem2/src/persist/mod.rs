//! Making stores durable: cache-line flush and fence instructions chosen once per process.
//!
//! The CPU layer (`x86_64.rs`, `aarch64.rs`, `generic.rs`) provides the raw instructions;
//! this file decides which one runs, honouring libpmem2's environment overrides.

use std::sync::OnceLock;

#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "aarch64.rs")]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), path = "generic.rs")]
mod arch;

/// The size of a cache line, the unit of a flush.
pub const CACHE_LINE_SIZE: usize = 64;

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

/// Whether a libpmem2 "disable" variable is set to exactly `"1"` (its accepted value).
pub(crate) fn env_is_one(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// The flush instruction this process uses, decided on first use from the CPU and
/// `PMEM_NO_CLWB` / `PMEM_NO_CLFLUSHOPT` (each honoured only when exactly `"1"`).
pub fn flush_instruction() -> FlushInstruction {
    static CHOSEN: OnceLock<FlushInstruction> = OnceLock::new();
    *CHOSEN.get_or_init(arch::detect_flush)
}

/// Writes back every cache line overlapping `[ptr, ptr+len)` with the chosen instruction.
/// Does not fence; call [`fence`] (drain) afterwards.
pub(crate) fn flush_lines(ptr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    let start = (ptr as usize) & !(CACHE_LINE_SIZE - 1);
    let end = ptr as usize + len;
    arch::flush_range(flush_instruction(), start, end);
}

/// Orders earlier flushes and non-temporal stores before later stores (SFENCE on x86_64).
pub(crate) fn fence() {
    arch::store_fence();
}
