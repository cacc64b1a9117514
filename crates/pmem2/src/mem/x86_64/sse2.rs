//! SSE2: four 16-byte registers per line.
//!
//! # Safety
//! SSE2 is baseline on x86_64; callers pass valid ranges (see the parent module).
#![allow(unsafe_code)]

use super::{simd_ops, Simd};
use crate::mem::counters::{count, Op};
use crate::persist::{CopyIsa, Flusher};
use std::arch::x86_64::*;

/// The SSE2 implementation.
pub(crate) struct Sse2;

impl Simd for Sse2 {
    const ISA: CopyIsa = CopyIsa::Sse2;
    const WC_CAPABLE: bool = true;
    type V = [__m128i; 4];

    #[inline(always)]
    unsafe fn load(src: *const u8) -> Self::V {
        // SAFETY: 64 readable bytes per the caller.
        unsafe {
            [
                _mm_loadu_si128(src.cast()),
                _mm_loadu_si128(src.add(16).cast()),
                _mm_loadu_si128(src.add(32).cast()),
                _mm_loadu_si128(src.add(48).cast()),
            ]
        }
    }

    #[inline(always)]
    unsafe fn store(dst: *mut u8, v: Self::V) {
        // SAFETY: 64 writable bytes at a 64-byte aligned `dst` per the caller.
        unsafe {
            _mm_store_si128(dst.cast(), v[0]);
            _mm_store_si128(dst.add(16).cast(), v[1]);
            _mm_store_si128(dst.add(32).cast(), v[2]);
            _mm_store_si128(dst.add(48).cast(), v[3]);
        }
    }

    #[inline(always)]
    unsafe fn stream(dst: *mut u8, v: Self::V) {
        // SAFETY: as `store`.
        unsafe {
            _mm_stream_si128(dst.cast(), v[0]);
            _mm_stream_si128(dst.add(16).cast(), v[1]);
            _mm_stream_si128(dst.add(32).cast(), v[2]);
            _mm_stream_si128(dst.add(48).cast(), v[3]);
        }
        crate::mem::counters::record_stream(dst, 64);
    }

    #[inline(always)]
    unsafe fn splat(value: u8) -> Self::V {
        // SAFETY: SSE2 is baseline on x86_64.
        let v = unsafe { _mm_set1_epi8(value as i8) };
        [v; 4]
    }
}

simd_ops!(Sse2, "sse2");
