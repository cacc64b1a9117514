//! AVX: two 32-byte registers per line.
//!
//! # Safety
//! Used only when CPUID reports AVX and XGETBV shows the OS saves YMM state; callers pass
//! valid ranges (see the parent module).
#![allow(unsafe_code)]

use super::{simd_ops, Simd};
use crate::mem::counters::{count, Op};
use crate::persist::{CopyIsa, Flusher};
use std::arch::x86_64::*;

/// The AVX implementation.
pub(crate) struct Avx;

impl Simd for Avx {
    const ISA: CopyIsa = CopyIsa::Avx;
    const WC_CAPABLE: bool = true;
    type V = [__m256i; 2];

    #[inline(always)]
    unsafe fn load(src: *const u8) -> Self::V {
        // SAFETY: 64 readable bytes per the caller; AVX checked by the caller.
        unsafe { [_mm256_loadu_si256(src.cast()), _mm256_loadu_si256(src.add(32).cast())] }
    }

    #[inline(always)]
    unsafe fn store(dst: *mut u8, v: Self::V) {
        // SAFETY: 64 writable bytes at a 64-byte aligned `dst` per the caller.
        unsafe {
            _mm256_store_si256(dst.cast(), v[0]);
            _mm256_store_si256(dst.add(32).cast(), v[1]);
        }
    }

    #[inline(always)]
    unsafe fn stream(dst: *mut u8, v: Self::V) {
        // SAFETY: as `store`.
        unsafe {
            _mm256_stream_si256(dst.cast(), v[0]);
            _mm256_stream_si256(dst.add(32).cast(), v[1]);
        }
        crate::mem::counters::record_stream(dst, 64);
    }

    #[inline(always)]
    unsafe fn splat(value: u8) -> Self::V {
        // SAFETY: AVX checked by the caller.
        let v = unsafe { _mm256_set1_epi8(value as i8) };
        [v; 2]
    }
}

simd_ops!(Avx, "avx");
