//! Portable copies: libpmem2's `memmove_nodrain_generic` (8-byte stores) and
//! `memmove_nodrain_libc` (the C library's memmove/memset), each followed by a flush of the
//! written range. Neither uses non-temporal stores, so their "movnt" variants are the
//! temporal ones.
//!
//! # Safety
//! The functions write through raw pointers; callers guarantee `len > 0`, a writable
//! destination and a readable source (possibly overlapping).
#![allow(unsafe_code)]

use super::counters::{count, Op, Variant};
use super::Ops;
use crate::persist::{CopyIsa, Flusher};

fn variant<F: Flusher>(op: Op, isa: CopyIsa) -> Variant {
    Variant {
        op,
        nontemporal: false,
        isa,
        movdir64b: false,
        flush: F::mode(),
    }
}

/// Byte-by-byte up to 8-byte alignment of the destination, then 8-byte volatile stores
/// (one instruction each, so aligned words stay atomic), then bytes.
pub(crate) struct Generic;

/// # Safety
/// As [`Ops::memmove_mov`].
unsafe fn generic_memmove(dst: *mut u8, src: *const u8, len: usize) {
    let forward = (dst as usize).wrapping_sub(src as usize) >= len;
    // SAFETY: every access is inside [0, len) of its range. Forward copies walk up and
    // backward copies walk down, and each word is read before it is written, so
    // overlapping ranges are copied as memmove does.
    unsafe {
        if forward {
            let mut i = 0;
            while i < len && !(dst as usize + i).is_multiple_of(8) {
                dst.add(i).write_volatile(src.add(i).read());
                i += 1;
            }
            while len - i >= 8 {
                let w = src.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_volatile(w);
                i += 8;
            }
            while i < len {
                dst.add(i).write_volatile(src.add(i).read());
                i += 1;
            }
        } else {
            let mut i = len;
            while i > 0 && !(dst as usize + i).is_multiple_of(8) {
                i -= 1;
                dst.add(i).write_volatile(src.add(i).read());
            }
            while i >= 8 {
                i -= 8;
                let w = src.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_volatile(w);
            }
            while i > 0 {
                i -= 1;
                dst.add(i).write_volatile(src.add(i).read());
            }
        }
    }
}

/// # Safety
/// As [`Ops::memset_mov`].
unsafe fn generic_memset(dst: *mut u8, value: u8, len: usize) {
    let word = u64::from(value) * 0x0101_0101_0101_0101;
    // SAFETY: every store is inside [0, len); word stores are 8-byte aligned.
    unsafe {
        let mut i = 0;
        while i < len && !(dst as usize + i).is_multiple_of(8) {
            dst.add(i).write_volatile(value);
            i += 1;
        }
        while len - i >= 8 {
            dst.add(i).cast::<u64>().write_volatile(word);
            i += 8;
        }
        while i < len {
            dst.add(i).write_volatile(value);
            i += 1;
        }
    }
}

impl Ops for Generic {
    unsafe fn memmove_mov<F: Flusher>(dst: *mut u8, src: *const u8, len: usize) {
        count(variant::<F>(Op::Memmove, CopyIsa::Generic));
        // SAFETY: forwarded from the caller.
        unsafe { generic_memmove(dst, src, len) };
        F::flush_range(dst, len);
    }
    unsafe fn memmove_movnt<F: Flusher>(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::memmove_mov::<F>(dst, src, len) }
    }
    unsafe fn memset_mov<F: Flusher>(dst: *mut u8, value: u8, len: usize) {
        count(variant::<F>(Op::Memset, CopyIsa::Generic));
        // SAFETY: forwarded from the caller.
        unsafe { generic_memset(dst, value, len) };
        F::flush_range(dst, len);
    }
    unsafe fn memset_movnt<F: Flusher>(dst: *mut u8, value: u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::memset_mov::<F>(dst, value, len) }
    }
}

/// The C library's `memmove`/`memset`, then a flush.
pub(crate) struct Libc;

impl Ops for Libc {
    unsafe fn memmove_mov<F: Flusher>(dst: *mut u8, src: *const u8, len: usize) {
        count(variant::<F>(Op::Memmove, CopyIsa::Libc));
        // SAFETY: forwarded from the caller; `copy` is memmove.
        unsafe { std::ptr::copy(src, dst, len) };
        F::flush_range(dst, len);
    }
    unsafe fn memmove_movnt<F: Flusher>(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::memmove_mov::<F>(dst, src, len) }
    }
    unsafe fn memset_mov<F: Flusher>(dst: *mut u8, value: u8, len: usize) {
        count(variant::<F>(Op::Memset, CopyIsa::Libc));
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::write_bytes(dst, value, len) };
        F::flush_range(dst, len);
    }
    unsafe fn memset_movnt<F: Flusher>(dst: *mut u8, value: u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::memset_mov::<F>(dst, value, len) }
    }
}
