//! AVX-512F: one 64-byte register per line.
//!
//! # Safety
//! Used only when CPUID reports AVX-512F and XGETBV shows the OS saves the opmask and ZMM
//! state; callers pass valid ranges (see the parent module).
#![allow(unsafe_code)]

use super::{simd_ops, Simd};
use crate::mem::counters::{count, Op};
use crate::persist::{CopyIsa, Flusher};
use std::arch::x86_64::*;

/// The AVX-512F implementation.
pub(crate) struct Avx512;

impl Simd for Avx512 {
    const ISA: CopyIsa = CopyIsa::Avx512f;
    const WC_CAPABLE: bool = false;
    type V = __m512i;

    #[inline(always)]
    unsafe fn load(src: *const u8) -> Self::V {
        // SAFETY: 64 readable bytes per the caller; AVX-512F checked by the caller.
        unsafe { _mm512_loadu_si512(src.cast()) }
    }

    #[inline(always)]
    unsafe fn store(dst: *mut u8, v: Self::V) {
        // SAFETY: 64 writable bytes at a 64-byte aligned `dst` per the caller.
        unsafe { _mm512_store_si512(dst.cast(), v) }
    }

    #[inline(always)]
    unsafe fn stream(dst: *mut u8, v: Self::V) {
        // SAFETY: as `store`.
        unsafe { _mm512_stream_si512(dst.cast(), v) };
        crate::mem::counters::record_stream(dst, 64);
    }

    #[inline(always)]
    unsafe fn splat(value: u8) -> Self::V {
        // SAFETY: AVX-512F checked by the caller.
        unsafe { _mm512_set1_epi8(value as i8) }
    }
}

simd_ops!(Avx512, "avx512f");
