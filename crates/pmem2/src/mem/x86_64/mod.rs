//! x86_64 copy loops: one algorithm, instantiated per vector width (SSE2, AVX, AVX-512F)
//! and per flush instruction, plus MOVDIR64B for the non-temporal body.
//!
//! Shape of every copy (as libpmem2's `memmove_mov*` / `memmove_movnt*`):
//! - the direction is forward unless the destination starts inside the source, so
//!   overlapping ranges are safe;
//! - up to 64 bytes are copied by [`copy_small`], which loads everything before storing;
//! - otherwise the unaligned head up to the next 64-byte boundary of the destination is
//!   copied by [`copy_small`] and flushed, the body is copied in 64-byte lines (aligned
//!   stores, unaligned loads; each group of four lines is loaded before it is stored), and
//!   the tail as the head. Non-temporal bodies stream; a tail of exactly 4, 8, 16 or 32
//!   bytes is streamed too, any other tail is stored and flushed.
//!
//! No store reaches outside `[dest, dest + len)`; stores of 8 bytes and more at 8-byte
//! aligned positions keep aligned words atomic.
//!
//! # Safety
//! The functions here write through raw pointers; callers (the [`Ops`] dispatch in
//! `mem/mod.rs`) guarantee `len > 0`, a writable destination and a readable source, and
//! that the ISA of the entry point was detected (CPUID + XGETBV) before it was chosen.
#![allow(unsafe_code)]

use super::counters::{count, record_fence, record_stream, Op, Variant};
use super::Ops;
use crate::persist::{self, CopyIsa, Flusher};
use std::arch::asm;
use std::arch::x86_64::*;
use std::marker::PhantomData;

mod avx;
mod avx512;
mod sse2;

pub(crate) use avx::Avx;
pub(crate) use avx512::Avx512;
pub(crate) use sse2::Sse2;

const LINE: usize = 64;
/// libpmem2's `PERF_BARRIER_SIZE`: 12 lines, the number of write-combining buffers.
const WC_BARRIER_BYTES: usize = 12 * LINE;

/// The vector operations one ISA provides for 64-byte lines.
pub(super) trait Simd {
    /// The ISA, for counters.
    const ISA: CopyIsa;
    /// Whether the ISA's non-temporal loops honour the write-combining workaround
    /// (SSE2 and AVX; AVX-512 never fences inside the loop, as in libpmem2).
    const WC_CAPABLE: bool;
    /// One 64-byte line in registers.
    type V: Copy;
    /// Loads 64 bytes from `src` (any alignment).
    ///
    /// # Safety
    /// 64 readable bytes; the ISA is available.
    unsafe fn load(src: *const u8) -> Self::V;
    /// Stores a line at 64-byte aligned `dst`.
    ///
    /// # Safety
    /// 64 writable bytes at an aligned `dst`; the ISA is available.
    unsafe fn store(dst: *mut u8, v: Self::V);
    /// Streams (non-temporal) a line to 64-byte aligned `dst`.
    ///
    /// # Safety
    /// As [`Simd::store`].
    unsafe fn stream(dst: *mut u8, v: Self::V);
    /// A line of `value` bytes.
    ///
    /// # Safety
    /// The ISA is available.
    unsafe fn splat(value: u8) -> Self::V;
}

/// SFENCE.
#[inline(always)]
fn sfence() {
    // SAFETY: SFENCE is baseline on x86_64 and has no operands.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) };
    record_fence();
}

/// Copies `1..=64` bytes, loading all of them before storing any (memmove-safe). Sizes
/// 8 and up use stores of at least 8 bytes, overlapping in the middle instead of writing
/// outside the range.
///
/// # Safety
/// `1 <= len <= 64`; `[dst, dst+len)` writable; `[src, src+len)` readable.
#[inline(always)]
unsafe fn copy_small(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: every access below lies in [0, len) of its range, per the match arm bounds.
    unsafe {
        match len {
            33..=64 => {
                let a = _mm_loadu_si128(src.cast());
                let b = _mm_loadu_si128(src.add(16).cast());
                let c = _mm_loadu_si128(src.add(len - 32).cast());
                let d = _mm_loadu_si128(src.add(len - 16).cast());
                _mm_storeu_si128(dst.cast(), a);
                _mm_storeu_si128(dst.add(16).cast(), b);
                _mm_storeu_si128(dst.add(len - 32).cast(), c);
                _mm_storeu_si128(dst.add(len - 16).cast(), d);
            }
            17..=32 => {
                let a = _mm_loadu_si128(src.cast());
                let b = _mm_loadu_si128(src.add(len - 16).cast());
                _mm_storeu_si128(dst.cast(), a);
                _mm_storeu_si128(dst.add(len - 16).cast(), b);
            }
            8..=16 => {
                let a = src.cast::<u64>().read_unaligned();
                let b = src.add(len - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(a);
                dst.add(len - 8).cast::<u64>().write_unaligned(b);
            }
            4..=7 => {
                let a = src.cast::<u32>().read_unaligned();
                let b = src.add(len - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(a);
                dst.add(len - 4).cast::<u32>().write_unaligned(b);
            }
            2..=3 => {
                let a = src.cast::<u16>().read_unaligned();
                let b = src.add(len - 2).cast::<u16>().read_unaligned();
                dst.cast::<u16>().write_unaligned(a);
                dst.add(len - 2).cast::<u16>().write_unaligned(b);
            }
            _ => *dst = *src,
        }
    }
}

/// Fills `1..=64` bytes with `value`, with the store pattern of [`copy_small`].
///
/// # Safety
/// `1 <= len <= 64`; `[dst, dst+len)` writable.
#[inline(always)]
unsafe fn set_small(dst: *mut u8, value: u8, len: usize) {
    let word = u64::from(value) * 0x0101_0101_0101_0101;
    // SAFETY: every store lies in [0, len) of the destination, per the match arm bounds.
    unsafe {
        match len {
            17..=64 => {
                let v = _mm_set1_epi8(value as i8);
                _mm_storeu_si128(dst.cast(), v);
                _mm_storeu_si128(dst.add(len - 16).cast(), v);
                if len > 32 {
                    _mm_storeu_si128(dst.add(16).cast(), v);
                    _mm_storeu_si128(dst.add(len - 32).cast(), v);
                }
            }
            8..=16 => {
                dst.cast::<u64>().write_unaligned(word);
                dst.add(len - 8).cast::<u64>().write_unaligned(word);
            }
            4..=7 => {
                dst.cast::<u32>().write_unaligned(word as u32);
                dst.add(len - 4).cast::<u32>().write_unaligned(word as u32);
            }
            2..=3 => {
                dst.cast::<u16>().write_unaligned(word as u16);
                dst.add(len - 2).cast::<u16>().write_unaligned(word as u16);
            }
            _ => *dst = value,
        }
    }
}

/// Streams a tail of exactly 4, 8, 16 or 32 bytes to a 64-byte aligned `dst`; returns
/// false (and stores nothing) for any other length.
///
/// # Safety
/// `dst` 64-byte aligned with `len` writable bytes; `src` has `len` readable bytes.
#[inline(always)]
unsafe fn stream_tail(dst: *mut u8, src: *const u8, len: usize) -> bool {
    // SAFETY: each arm stores exactly `len` bytes at aligned `dst` and reads `len` bytes.
    unsafe {
        match len {
            32 => {
                let a = _mm_loadu_si128(src.cast());
                let b = _mm_loadu_si128(src.add(16).cast());
                _mm_stream_si128(dst.cast(), a);
                _mm_stream_si128(dst.add(16).cast(), b);
            }
            16 => _mm_stream_si128(dst.cast(), _mm_loadu_si128(src.cast())),
            8 => _mm_stream_si64(dst.cast(), src.cast::<i64>().read_unaligned()),
            4 => _mm_stream_si32(dst.cast(), src.cast::<i32>().read_unaligned()),
            _ => return false,
        }
    }
    record_stream(dst, len);
    true
}

/// [`stream_tail`] for a fill.
///
/// # Safety
/// `dst` 64-byte aligned with `len` writable bytes.
#[inline(always)]
unsafe fn stream_tail_set(dst: *mut u8, value: u8, len: usize) -> bool {
    let word = (u64::from(value) * 0x0101_0101_0101_0101) as i64;
    // SAFETY: each arm stores exactly `len` bytes at aligned `dst`.
    unsafe {
        match len {
            32 => {
                let v = _mm_set1_epi8(value as i8);
                _mm_stream_si128(dst.cast(), v);
                _mm_stream_si128(dst.add(16).cast(), v);
            }
            16 => _mm_stream_si128(dst.cast(), _mm_set1_epi8(value as i8)),
            8 => _mm_stream_si64(dst.cast(), word),
            4 => _mm_stream_si32(dst.cast(), word as i32),
            _ => return false,
        }
    }
    record_stream(dst, len);
    true
}

/// Whether to copy forward: the destination does not start inside the source.
#[inline(always)]
fn forward(dst: *mut u8, src: *const u8, len: usize) -> bool {
    (dst as usize).wrapping_sub(src as usize) >= len
}

/// Bytes from `dst` to the next 64-byte boundary (0 if aligned).
#[inline(always)]
fn head_len(dst: *mut u8) -> usize {
    (dst as usize).wrapping_neg() & (LINE - 1)
}

/// Copies 4 lines from `s` to aligned `d`: all loads, then the stores (stream or store).
///
/// # Safety
/// 256 readable bytes at `s`, 256 writable aligned bytes at `d`; the ISA is available.
#[inline(always)]
unsafe fn lines4<S: Simd, const NT: bool>(d: *mut u8, s: *const u8) {
    // SAFETY: forwarded from the caller; offsets stay within the 256 bytes.
    unsafe {
        let a = S::load(s);
        let b = S::load(s.add(LINE));
        let c = S::load(s.add(2 * LINE));
        let e = S::load(s.add(3 * LINE));
        if NT {
            S::stream(d, a);
            S::stream(d.add(LINE), b);
            S::stream(d.add(2 * LINE), c);
            S::stream(d.add(3 * LINE), e);
        } else {
            S::store(d, a);
            S::store(d.add(LINE), b);
            S::store(d.add(2 * LINE), c);
            S::store(d.add(3 * LINE), e);
        }
    }
}

/// Flushes the 4 lines at aligned `d`.
#[inline(always)]
fn flush4<F: Flusher>(d: *const u8) {
    F::flush_line(d);
    F::flush_line(d.wrapping_add(LINE));
    F::flush_line(d.wrapping_add(2 * LINE));
    F::flush_line(d.wrapping_add(3 * LINE));
}

/// Counts the write-combining barrier: SFENCE after every 768 streamed bytes while more
/// data follows.
#[inline(always)]
fn wc_step(enabled: bool, since: &mut usize, step: usize, remaining: usize) {
    if enabled {
        *since += step;
        if *since >= WC_BARRIER_BYTES && remaining != 0 {
            sfence();
            *since = 0;
        }
    }
}

/// The memmove of one ISA, temporal (`NT == false`) or non-temporal, flushing with `F`.
///
/// # Safety
/// `len > 0`; destination writable, source readable (they may overlap); ISA available.
#[inline(always)]
pub(super) unsafe fn memmove<S: Simd, F: Flusher, const NT: bool>(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if len <= LINE {
            copy_small(dst, src, len);
            F::flush_range(dst, len);
        } else if forward(dst, src, len) {
            memmove_fw::<S, F, NT>(dst, src, len);
        } else {
            memmove_bw::<S, F, NT>(dst, src, len);
        }
    }
    if NT && F::FENCE_AFTER_NT {
        sfence();
    }
}

/// # Safety
/// As [`memmove`], with `len > 64`.
#[inline(always)]
unsafe fn memmove_fw<S: Simd, F: Flusher, const NT: bool>(mut d: *mut u8, mut s: *const u8, mut n: usize) {
    let wc = NT && S::WC_CAPABLE && persist::cpu().wc_workaround();
    let mut since = 0;
    // SAFETY: every access stays inside [d, d+n) / [s, s+n) as n shrinks; stores of a
    // group follow its loads, and earlier stores only hit source bytes already loaded.
    unsafe {
        let head = head_len(d);
        if head != 0 {
            copy_small(d, s, head);
            F::flush_range(d, head);
            d = d.add(head);
            s = s.add(head);
            n -= head;
        }
        while n >= 4 * LINE {
            lines4::<S, NT>(d, s);
            if !NT {
                flush4::<F>(d);
            }
            d = d.add(4 * LINE);
            s = s.add(4 * LINE);
            n -= 4 * LINE;
            wc_step(wc, &mut since, 4 * LINE, n);
        }
        while n >= LINE {
            let v = S::load(s);
            if NT {
                S::stream(d, v);
            } else {
                S::store(d, v);
                F::flush_line(d);
            }
            d = d.add(LINE);
            s = s.add(LINE);
            n -= LINE;
        }
        if n != 0 && !(NT && stream_tail(d, s, n)) {
            copy_small(d, s, n);
            F::flush_range(d, n);
        }
    }
}

/// # Safety
/// As [`memmove`], with `len > 64` and the destination starting inside the source.
#[inline(always)]
unsafe fn memmove_bw<S: Simd, F: Flusher, const NT: bool>(d: *mut u8, s: *const u8, mut n: usize) {
    let wc = NT && S::WC_CAPABLE && persist::cpu().wc_workaround();
    let mut since = 0;
    // SAFETY: every access stays inside the ranges; copying from the end, each group is
    // loaded before it is stored and earlier stores only hit source bytes already loaded.
    unsafe {
        let tail = (d as usize + n) & (LINE - 1);
        if tail != 0 {
            n -= tail;
            copy_small(d.add(n), s.add(n), tail);
            F::flush_range(d.add(n), tail);
        }
        while n >= 4 * LINE {
            n -= 4 * LINE;
            lines4::<S, NT>(d.add(n), s.add(n));
            if !NT {
                flush4::<F>(d.add(n));
            }
            wc_step(wc, &mut since, 4 * LINE, n);
        }
        while n >= LINE {
            n -= LINE;
            let v = S::load(s.add(n));
            if NT {
                S::stream(d.add(n), v);
            } else {
                S::store(d.add(n), v);
                F::flush_line(d.add(n));
            }
        }
        if n != 0 {
            copy_small(d, s, n);
            F::flush_range(d, n);
        }
    }
}

/// The memset of one ISA, temporal or non-temporal, flushing with `F`.
///
/// # Safety
/// `len > 0`; destination writable; ISA available.
#[inline(always)]
pub(super) unsafe fn memset<S: Simd, F: Flusher, const NT: bool>(mut d: *mut u8, value: u8, mut n: usize) {
    // SAFETY: every store stays inside [d, d+n) as n shrinks.
    unsafe {
        if n <= LINE {
            set_small(d, value, n);
            F::flush_range(d, n);
        } else {
            let wc = NT && S::WC_CAPABLE && persist::cpu().wc_workaround();
            let mut since = 0;
            let head = head_len(d);
            if head != 0 {
                set_small(d, value, head);
                F::flush_range(d, head);
                d = d.add(head);
                n -= head;
            }
            let v = S::splat(value);
            while n >= 4 * LINE {
                for i in 0..4 {
                    if NT {
                        S::stream(d.add(i * LINE), v);
                    } else {
                        S::store(d.add(i * LINE), v);
                    }
                }
                if !NT {
                    flush4::<F>(d);
                }
                d = d.add(4 * LINE);
                n -= 4 * LINE;
                wc_step(wc, &mut since, 4 * LINE, n);
            }
            while n >= LINE {
                if NT {
                    S::stream(d, v);
                } else {
                    S::store(d, v);
                    F::flush_line(d);
                }
                d = d.add(LINE);
                n -= LINE;
            }
            if n != 0 && !(NT && stream_tail_set(d, value, n)) {
                set_small(d, value, n);
                F::flush_range(d, n);
            }
        }
    }
    if NT && F::FENCE_AFTER_NT {
        sfence();
    }
}

/// The counter entry of a SIMD variant.
#[inline(always)]
pub(super) fn variant<F: Flusher>(op: Op, isa: CopyIsa, nontemporal: bool, movdir64b: bool) -> Variant {
    Variant {
        op,
        nontemporal,
        isa,
        movdir64b,
        flush: F::mode(),
    }
}

/// Defines the `#[target_feature]` entry points of one ISA and its [`Ops`] implementation.
macro_rules! simd_ops {
    ($ty:ty, $feature:literal) => {
        /// # Safety
        /// As [`super::memmove`]; the caller checked the target feature.
        #[target_feature(enable = $feature)]
        unsafe fn memmove_entry<F: Flusher, const NT: bool>(d: *mut u8, s: *const u8, n: usize) {
            // SAFETY: forwarded from the caller.
            unsafe { super::memmove::<$ty, F, NT>(d, s, n) }
        }

        /// # Safety
        /// As [`super::memset`]; the caller checked the target feature.
        #[target_feature(enable = $feature)]
        unsafe fn memset_entry<F: Flusher, const NT: bool>(d: *mut u8, value: u8, n: usize) {
            // SAFETY: forwarded from the caller.
            unsafe { super::memset::<$ty, F, NT>(d, value, n) }
        }

        impl crate::mem::Ops for $ty {
            unsafe fn memmove_mov<F: Flusher>(d: *mut u8, s: *const u8, n: usize) {
                count(super::variant::<F>(Op::Memmove, <$ty as Simd>::ISA, false, false));
                // SAFETY: this type is chosen only when CPUID/XGETBV reported the feature;
                // the ranges are valid per the caller.
                unsafe { memmove_entry::<F, false>(d, s, n) }
            }
            unsafe fn memmove_movnt<F: Flusher>(d: *mut u8, s: *const u8, n: usize) {
                count(super::variant::<F>(Op::Memmove, <$ty as Simd>::ISA, true, false));
                // SAFETY: as above.
                unsafe { memmove_entry::<F, true>(d, s, n) }
            }
            unsafe fn memset_mov<F: Flusher>(d: *mut u8, value: u8, n: usize) {
                count(super::variant::<F>(Op::Memset, <$ty as Simd>::ISA, false, false));
                // SAFETY: as above.
                unsafe { memset_entry::<F, false>(d, value, n) }
            }
            unsafe fn memset_movnt<F: Flusher>(d: *mut u8, value: u8, n: usize) {
                count(super::variant::<F>(Op::Memset, <$ty as Simd>::ISA, true, false));
                // SAFETY: as above.
                unsafe { memset_entry::<F, true>(d, value, n) }
            }
        }
    };
}
pub(super) use simd_ops;

/// MOVDIR64B for the non-temporal body (64-byte atomic direct stores); temporal variants
/// and unaligned edges use `T`.
pub(crate) struct Movdir64b<T>(PhantomData<T>);

/// A 64-byte aligned line on the stack, the source of MOVDIR64B fills.
#[repr(C, align(64))]
struct AlignedLine([u8; LINE]);

/// MOVDIR64B: copies the 64 bytes at `src` to aligned `dst` as one direct store.
///
/// # Safety
/// The CPU has MOVDIR64B; 64 readable bytes at `src`, 64 writable bytes at aligned `dst`;
/// the ranges do not overlap.
#[inline(always)]
unsafe fn movdir64b(dst: *mut u8, src: *const u8) {
    // `movdir64b rax, [rdx]` (66 0F 38 F8 /r, ModRM 0x02), spelled as bytes so that any
    // assembler accepts it.
    // SAFETY: guaranteed by the caller; the instruction reads [rdx..+64] and writes
    // [rax..+64] only.
    unsafe {
        asm!(".byte 0x66, 0x0f, 0x38, 0xf8, 0x02", in("rax") dst, in("rdx") src, options(nostack, preserves_flags))
    };
    record_stream(dst, LINE);
}

/// # Safety
/// As [`Ops::memmove_movnt`], the CPU has MOVDIR64B, and `|dst - src| >= 64`.
unsafe fn movdir64b_memmove<F: Flusher>(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: accesses stay inside the ranges; in each direction a line is read (by
    // MOVDIR64B itself, before its store) before any store that could overwrite it, since
    // source and destination are at least a line apart.
    unsafe {
        if forward(dst, src, len) {
            let (mut d, mut s, mut n) = (dst, src, len);
            let head = head_len(d).min(n);
            if head != 0 {
                copy_small(d, s, head);
                F::flush_range(d, head);
                d = d.add(head);
                s = s.add(head);
                n -= head;
            }
            while n >= LINE {
                movdir64b(d, s);
                d = d.add(LINE);
                s = s.add(LINE);
                n -= LINE;
            }
            if n != 0 {
                copy_small(d, s, n);
                F::flush_range(d, n);
            }
        } else {
            let mut n = len;
            let tail = ((dst as usize + n) & (LINE - 1)).min(n);
            if tail != 0 {
                n -= tail;
                copy_small(dst.add(n), src.add(n), tail);
                F::flush_range(dst.add(n), tail);
            }
            while n >= LINE {
                n -= LINE;
                movdir64b(dst.add(n), src.add(n));
            }
            if n != 0 {
                copy_small(dst, src, n);
                F::flush_range(dst, n);
            }
        }
    }
    sfence_after_nt::<F>();
}

/// # Safety
/// As [`Ops::memset_movnt`] and the CPU has MOVDIR64B.
unsafe fn movdir64b_memset<F: Flusher>(dst: *mut u8, value: u8, len: usize) {
    let line = AlignedLine([value; LINE]);
    let (mut d, mut n) = (dst, len);
    // SAFETY: stores stay inside [dst, dst+len); `line` is a separate stack buffer.
    unsafe {
        let head = head_len(d).min(n);
        if head != 0 {
            set_small(d, value, head);
            F::flush_range(d, head);
            d = d.add(head);
            n -= head;
        }
        while n >= LINE {
            movdir64b(d, line.0.as_ptr());
            d = d.add(LINE);
            n -= LINE;
        }
        if n != 0 {
            set_small(d, value, n);
            F::flush_range(d, n);
        }
    }
    sfence_after_nt::<F>();
}

#[inline(always)]
fn sfence_after_nt<F: Flusher>() {
    if F::FENCE_AFTER_NT {
        sfence();
    }
}

impl<T: Ops + Simd> Ops for Movdir64b<T> {
    unsafe fn memmove_mov<F: Flusher>(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded.
        unsafe { T::memmove_mov::<F>(d, s, n) }
    }
    unsafe fn memmove_movnt<F: Flusher>(d: *mut u8, s: *const u8, n: usize) {
        let distance = (d as usize).abs_diff(s as usize);
        if distance < LINE {
            // MOVDIR64B's read and write of one line would overlap.
            // SAFETY: forwarded.
            return unsafe { T::memmove_movnt::<F>(d, s, n) };
        }
        count(variant::<F>(Op::Memmove, T::ISA, true, true));
        // SAFETY: this type is chosen only when CPUID reported MOVDIR64B and the user
        // opted in; ranges valid per the caller; distance checked above.
        unsafe { movdir64b_memmove::<F>(d, s, n) }
    }
    unsafe fn memset_mov<F: Flusher>(d: *mut u8, value: u8, n: usize) {
        // SAFETY: forwarded.
        unsafe { T::memset_mov::<F>(d, value, n) }
    }
    unsafe fn memset_movnt<F: Flusher>(d: *mut u8, value: u8, n: usize) {
        count(variant::<F>(Op::Memset, T::ISA, true, true));
        // SAFETY: as in memmove_movnt.
        unsafe { movdir64b_memset::<F>(d, value, n) }
    }
}
