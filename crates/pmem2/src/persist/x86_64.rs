//! x86_64 flush and fence instructions.
//!
//! # Safety
//! Cache-line flush instructions never fault on a mapped address and do not change memory
//! contents; callers pass addresses inside a live mapping. Each instruction is executed only
//! after CPUID reported it.
#![allow(unsafe_code)]

use super::{env_is_one, FlushInstruction, CACHE_LINE_SIZE};
use std::arch::asm;
use std::arch::x86_64::{__cpuid, __cpuid_count};

/// Picks CLWB, else CLFLUSHOPT, else CLFLUSH, as libpmem2's `pmem_cpuinfo_to_funcs` does.
pub(super) fn detect_flush() -> FlushInstruction {
    let max_leaf = __cpuid(0).eax;
    let leaf7_ebx = if max_leaf >= 7 { __cpuid_count(7, 0).ebx } else { 0 };
    let has_clflushopt = leaf7_ebx & (1 << 23) != 0;
    let has_clwb = leaf7_ebx & (1 << 24) != 0;
    if has_clwb && !env_is_one("PMEM_NO_CLWB") {
        FlushInstruction::Clwb
    } else if has_clflushopt && !env_is_one("PMEM_NO_CLFLUSHOPT") {
        FlushInstruction::Clflushopt
    } else {
        // CLFLUSH is part of SSE2, which every x86_64 CPU has.
        FlushInstruction::Clflush
    }
}

/// Flushes each line in `[start, end)`; `start` is cache-line aligned.
pub(super) fn flush_range(kind: FlushInstruction, start: usize, end: usize) {
    let mut line = start;
    match kind {
        FlushInstruction::Clwb => {
            while line < end {
                // SAFETY: CLWB was reported by CPUID; the line is in a live mapping.
                unsafe { asm!("clwb [{0}]", in(reg) line, options(nostack, preserves_flags)) };
                line += CACHE_LINE_SIZE;
            }
        }
        FlushInstruction::Clflushopt => {
            while line < end {
                // SAFETY: CLFLUSHOPT was reported by CPUID; the line is in a live mapping.
                unsafe { asm!("clflushopt [{0}]", in(reg) line, options(nostack, preserves_flags)) };
                line += CACHE_LINE_SIZE;
            }
        }
        _ => {
            while line < end {
                // SAFETY: CLFLUSH is baseline on x86_64; the line is in a live mapping.
                unsafe { asm!("clflush [{0}]", in(reg) line, options(nostack, preserves_flags)) };
                line += CACHE_LINE_SIZE;
            }
        }
    }
}

/// SFENCE: orders flushes and non-temporal stores before later stores.
pub(super) fn store_fence() {
    // SAFETY: SFENCE is baseline on x86_64 and has no operands.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) };
}
