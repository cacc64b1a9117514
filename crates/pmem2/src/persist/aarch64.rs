//! aarch64 flush and fence instructions: `DC CVAP` (or `DC CVAC`) and `DMB ISHST`.
//!
//! # Safety
//! Cache maintenance by virtual address does not change memory contents; callers pass
//! addresses inside a live mapping.
#![allow(unsafe_code)]

use super::{CpuFeatures, FlushInstruction, CACHE_LINE_SIZE};
use crate::mem::counters::{record_fence, record_flush};
use std::arch::asm;

/// No SIMD copy routines; the flush instruction from `AT_HWCAP`.
pub(super) fn features() -> CpuFeatures {
    CpuFeatures {
        other_flush: Some(detect_flush()),
        ..CpuFeatures::default()
    }
}

/// `DC CVAP` when the kernel reports DCPOP, else `DC CVAC`.
fn detect_flush() -> FlushInstruction {
    const HWCAP_DCPOP: libc::c_ulong = 1 << 16;
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_HWCAP) } & HWCAP_DCPOP != 0 {
        FlushInstruction::DcCvap
    } else {
        FlushInstruction::DcCvac
    }
}

/// Cleans each line in `[start, end)`; `start` is cache-line aligned.
pub(super) fn flush_range(kind: FlushInstruction, start: usize, end: usize) {
    let mut line = start;
    while line < end {
        if kind == FlushInstruction::DcCvap {
            // SAFETY: DCPOP was reported by the kernel; the line is in a live mapping.
            // `sys #3, c7, c12, #1` is DC CVAP, spelled so that older assemblers accept it.
            unsafe { asm!("sys #3, c7, c12, #1, {0}", in(reg) line, options(nostack, preserves_flags)) };
        } else {
            // SAFETY: DC CVAC is baseline ARMv8; the line is in a live mapping.
            unsafe { asm!("dc cvac, {0}", in(reg) line, options(nostack, preserves_flags)) };
        }
        record_flush(kind, line);
        line += CACHE_LINE_SIZE;
    }
}

/// `DMB ISHST`: orders earlier stores and cleans before later stores.
pub(super) fn store_fence() {
    // SAFETY: a barrier has no operands.
    unsafe { asm!("dmb ishst", options(nostack, preserves_flags)) };
    record_fence();
}
