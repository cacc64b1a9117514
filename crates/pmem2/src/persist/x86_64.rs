//! x86_64 feature detection (CPUID + XGETBV), flush and fence instructions.
//!
//! # Safety
//! Cache-line flush instructions never fault on a readable mapped address and do not change
//! memory contents; callers pass addresses inside a live mapping. Each instruction is
//! executed only after CPUID reported it (CLFLUSH and SFENCE are baseline x86_64).
#![allow(unsafe_code)]

use super::{CpuFeatures, FlushInstruction, FlushMode, Flusher, CACHE_LINE_SIZE};
use crate::mem::counters::{record_fence, record_flush};
use std::arch::asm;
use std::arch::x86_64::{__cpuid_count, CpuidResult};

/// XCR0 bits 1 (SSE) and 2 (AVX/YMM high halves): the OS saves YMM state.
const XCR0_YMM: u64 = 0b110;
/// XCR0 bits 5-7 (opmask, ZMM_Hi256, Hi16_ZMM) plus the YMM bits: the OS saves ZMM state.
const XCR0_ZMM: u64 = 0b1110_0110;

/// Whether AVX (`zmm == false`) or AVX-512 (`zmm == true`) registers may be used, from
/// CPUID.1:ECX.OSXSAVE and XCR0. libpmem2 skips this check.
pub(super) fn os_saves_state(osxsave: bool, xcr0: u64, zmm: bool) -> bool {
    let need = if zmm { XCR0_ZMM } else { XCR0_YMM };
    osxsave && xcr0 & need == need
}

fn xgetbv0() -> u64 {
    let (eax, edx): (u32, u32);
    // SAFETY: called only when CPUID.1:ECX.OSXSAVE is set, which means XGETBV is
    // available and XCR0 (ecx = 0) readable at any privilege level.
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") eax, out("edx") edx, options(nomem, nostack, preserves_flags)) };
    (u64::from(edx) << 32) | u64::from(eax)
}

/// CPUID `leaf`, subleaf `subleaf`.
// `__cpuid_count` is a safe function from Rust 1.94 and an unsafe one before; the crate builds
// with older compilers (its `rust-version`), hence the block that newer ones find unneeded.
#[allow(unused_unsafe)]
fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    // SAFETY: CPUID is baseline on x86_64; an unsupported leaf returns zeros or the highest
    // basic leaf's values, never a fault (callers check the maximum leaf first).
    unsafe { __cpuid_count(leaf, subleaf) }
}

/// CPUID leaves 0, 1 and 7 as libpmem2 reads them, with AVX/AVX-512 additionally
/// requiring the OS to save their state.
pub(super) fn features() -> CpuFeatures {
    let leaf0 = cpuid(0, 0);
    let max_leaf = leaf0.eax;
    let leaf1_ecx = if max_leaf >= 1 { cpuid(1, 0).ecx } else { 0 };
    let leaf7 = if max_leaf >= 7 {
        let r = cpuid(7, 0);
        (r.ebx, r.ecx)
    } else {
        (0, 0)
    };
    decode(leaf0, leaf1_ecx, leaf7, xgetbv0)
}

/// The features in CPUID leaf 0 (vendor), leaf 1's ECX and leaf 7's EBX and ECX; `xcr0`
/// is read only when OSXSAVE says XGETBV exists. Separate from the instructions so that
/// tests can give it CPUs this one is not.
fn decode(
    leaf0: CpuidResult,
    leaf1_ecx: u32,
    (leaf7_ebx, leaf7_ecx): (u32, u32),
    xcr0: impl FnOnce() -> u64,
) -> CpuFeatures {
    let genuine_intel = (leaf0.ebx, leaf0.edx, leaf0.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    let osxsave = leaf1_ecx & (1 << 27) != 0;
    let xcr0 = if osxsave { xcr0() } else { 0 };
    CpuFeatures {
        clflushopt: leaf7_ebx & (1 << 23) != 0,
        clwb: leaf7_ebx & (1 << 24) != 0,
        avx: leaf1_ecx & (1 << 28) != 0 && os_saves_state(osxsave, xcr0, false),
        avx512f: leaf7_ebx & (1 << 16) != 0 && os_saves_state(osxsave, xcr0, true),
        movdir64b: leaf7_ecx & (1 << 28) != 0,
        genuine_intel,
        simd: true,
        other_flush: None,
    }
}

/// CLWB, used only after CPUID reported it.
pub(crate) struct Clwb;
impl Flusher for Clwb {
    const FENCE_AFTER_NT: bool = false;
    fn mode() -> FlushMode {
        FlushMode::Flush(FlushInstruction::Clwb)
    }
    #[inline(always)]
    fn flush_line(addr: *const u8) {
        // SAFETY: CLWB was reported by CPUID (this type is chosen only then); the address
        // is inside a live mapping and the instruction does not change memory.
        unsafe { asm!("clwb [{0}]", in(reg) addr, options(nostack, preserves_flags)) };
        record_flush(FlushInstruction::Clwb, addr as usize);
    }
}

/// CLFLUSHOPT, used only after CPUID reported it.
pub(crate) struct Clflushopt;
impl Flusher for Clflushopt {
    const FENCE_AFTER_NT: bool = false;
    fn mode() -> FlushMode {
        FlushMode::Flush(FlushInstruction::Clflushopt)
    }
    #[inline(always)]
    fn flush_line(addr: *const u8) {
        // SAFETY: CLFLUSHOPT was reported by CPUID; the address is inside a live mapping.
        unsafe { asm!("clflushopt [{0}]", in(reg) addr, options(nostack, preserves_flags)) };
        record_flush(FlushInstruction::Clflushopt, addr as usize);
    }
}

/// CLFLUSH, baseline on x86_64.
pub(crate) struct Clflush;
impl Flusher for Clflush {
    const FENCE_AFTER_NT: bool = true;
    fn mode() -> FlushMode {
        FlushMode::Flush(FlushInstruction::Clflush)
    }
    #[inline(always)]
    fn flush_line(addr: *const u8) {
        // SAFETY: CLFLUSH is baseline on x86_64; the address is inside a live mapping.
        unsafe { asm!("clflush [{0}]", in(reg) addr, options(nostack, preserves_flags)) };
        record_flush(FlushInstruction::Clflush, addr as usize);
    }
}

/// Flushes each line in `[start, end)` with `kind`; `start` is cache-line aligned.
#[inline]
pub(super) fn flush_range(kind: FlushInstruction, start: usize, end: usize) {
    let len = end - start;
    match kind {
        FlushInstruction::Clwb => Clwb::flush_range(start as *const u8, len),
        FlushInstruction::Clflushopt => Clflushopt::flush_range(start as *const u8, len),
        _ => Clflush::flush_range(start as *const u8, len),
    }
    debug_assert_eq!(start % CACHE_LINE_SIZE, 0);
}

/// SFENCE: orders flushes and non-temporal stores before later stores.
#[inline(always)]
pub(super) fn store_fence() {
    // SAFETY: SFENCE is baseline on x86_64 and has no operands.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) };
    record_fence();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each feature from its own bit only (this CPU, having them all, cannot tell).
    #[test]
    fn decode_reads_each_feature_from_its_bit() {
        let intel = CpuidResult {
            eax: 7,
            ebx: 0x756e_6547,
            ecx: 0x6c65_746e,
            edx: 0x4965_6e69,
        };
        let amd = CpuidResult {
            eax: 7,
            ebx: 0x6874_7541,
            ecx: 0x444d_4163,
            edx: 0x6974_6e65,
        };
        let no_xgetbv = || -> u64 { panic!("XGETBV read without OSXSAVE") };
        let none = decode(intel, 0, (0, 0), no_xgetbv);
        assert!(none.genuine_intel);
        assert!(!decode(amd, 0, (0, 0), no_xgetbv).genuine_intel);
        let flags = |f: CpuFeatures| (f.clflushopt, f.clwb, f.avx, f.avx512f, f.movdir64b);
        assert_eq!(flags(none), (false, false, false, false, false));
        assert_eq!(
            flags(decode(intel, 0, (1 << 23, 0), no_xgetbv)),
            (true, false, false, false, false)
        );
        assert_eq!(
            flags(decode(intel, 0, (1 << 24, 0), no_xgetbv)),
            (false, true, false, false, false)
        );
        assert_eq!(
            flags(decode(intel, 0, (0, 1 << 28), no_xgetbv)),
            (false, false, false, false, true)
        );
        let osxsave = 1 << 27;
        let all_state = || 0xe7;
        let avx = decode(intel, osxsave | 1 << 28, (0, 0), all_state);
        assert_eq!(flags(avx), (false, false, true, false, false));
        let avx512 = decode(intel, osxsave, (1 << 16, 0), all_state);
        assert_eq!(flags(avx512), (false, false, false, true, false));
        // The bits without OSXSAVE: the OS does not save the registers.
        let no_os = decode(intel, 1 << 28, (1 << 16, 0), no_xgetbv);
        assert_eq!(flags(no_os), (false, false, false, false, false));
    }

    #[test]
    fn xgetbv_gates_avx_and_avx512() {
        assert!(!os_saves_state(false, 0xff, false), "no OSXSAVE: no AVX");
        assert!(os_saves_state(true, 0b111, false));
        assert!(!os_saves_state(true, 0b011, false), "YMM state off");
        assert!(!os_saves_state(true, 0b111, true), "ZMM state off");
        assert!(os_saves_state(true, 0b1110_0111, true));
        assert!(!os_saves_state(true, 0b0110_0111, true), "Hi16_ZMM off");
    }

    #[test]
    fn this_cpu_is_detected_consistently_with_std() {
        let f = features();
        assert_eq!(f.avx, std::is_x86_feature_detected!("avx"));
        assert_eq!(f.avx512f, std::is_x86_feature_detected!("avx512f"));
    }
}
