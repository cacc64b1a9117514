//! Path counters: which copy variant, flush, fence and msync actually ran, and what each
//! flush instruction, non-temporal store and msync covered.
//!
//! With the `path-counters` feature, once `reset()` has been called, every copy variant,
//! range flush, fence, msync and deep-flush write increments a per-thread counter, so tests
//! can check the instruction path instead of assuming it. Until then only a relaxed load is
//! paid (the crate's benches get the feature through the dev-dependency). Without the feature the hooks compile to nothing and only the
//! [`Variant`] description types remain.
//!
//! The counters count calls. What a persist really covered is in the [`Event`] log that
//! `record()` starts and `take_events()` returns (both with the feature): every cache-line flush with the address it
//! was given, every non-temporal store with its bytes, every store fence, and every msync
//! with its arguments. Each event is recorded by the function that issues the instruction
//! or system call, right after it, so a wrapper that stops calling it loses the event too.
//! (That the instruction itself is still there is checked on the release build's disassembly
//! by `scripts/check-instructions`.)
//!
//! ```
//! # #[cfg(feature = "path-counters")] {
//! use pmem2::mem::counters;
//! counters::reset();
//! // ... a copy ...
//! for (variant, n) in counters::snapshot() {
//!     println!("{} ran {n} times", variant.name());
//! }
//! # }
//! ```

// Without the feature the slot tables are only used by the (empty) hooks.
#![cfg_attr(not(feature = "path-counters"), allow(dead_code))]

use crate::persist::{CopyIsa, FlushInstruction, FlushMode};
#[cfg(feature = "path-counters")]
use std::cell::RefCell;
#[cfg(feature = "path-counters")]
use std::sync::atomic::{AtomicUsize, Ordering};

/// The operation of a copy variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// memmove / memcpy.
    Memmove,
    /// memset.
    Memset,
}

/// One copy variant, as libpmem2 names them (`memmove_movnt_avx512f_clwb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// memmove or memset.
    pub op: Op,
    /// Whether the body used non-temporal stores.
    pub nontemporal: bool,
    /// The implementation (for non-temporal variants with MOVDIR64B, the temporal fallback).
    pub isa: CopyIsa,
    /// Whether the non-temporal body used MOVDIR64B.
    pub movdir64b: bool,
    /// How written lines were flushed.
    pub flush: FlushMode,
}

impl Variant {
    /// libpmem2's name: `memmove_mov_avx_clwb`, `memset_movnt_avx512f_empty`,
    /// `memmove_movnt_movdir64b_clflushopt`, `memmove_mov_sse2_noflush`,
    /// `memmove_nodrain_generic`, `memset_nodrain_libc`.
    pub fn name(&self) -> String {
        let op = match self.op {
            Op::Memmove => "memmove",
            Op::Memset => "memset",
        };
        if matches!(self.isa, CopyIsa::Generic | CopyIsa::Libc) {
            return format!("{op}_nodrain_{}", self.isa.name());
        }
        let store = if self.nontemporal { "movnt" } else { "mov" };
        let isa = if self.movdir64b { "movdir64b" } else { self.isa.name() };
        let flush = match self.flush {
            FlushMode::NoFlush => "noflush",
            FlushMode::Empty => "empty",
            FlushMode::Flush(f) => f.name(),
        };
        format!("{op}_{store}_{isa}_{}", flush.replace(' ', ""))
    }
}

const OPS: [Op; 2] = [Op::Memmove, Op::Memset];
const ISAS: [CopyIsa; 5] = [
    CopyIsa::Avx512f,
    CopyIsa::Avx,
    CopyIsa::Sse2,
    CopyIsa::Generic,
    CopyIsa::Libc,
];
const FLUSHES: [FlushMode; 8] = [
    FlushMode::NoFlush,
    FlushMode::Empty,
    FlushMode::Flush(FlushInstruction::Clwb),
    FlushMode::Flush(FlushInstruction::Clflushopt),
    FlushMode::Flush(FlushInstruction::Clflush),
    FlushMode::Flush(FlushInstruction::DcCvap),
    FlushMode::Flush(FlushInstruction::DcCvac),
    FlushMode::Flush(FlushInstruction::None),
];
#[cfg(feature = "path-counters")]
const VARIANTS: usize = OPS.len() * 2 * ISAS.len() * 2 * FLUSHES.len();

/// The counter slot of a variant (computed at compile time for the monomorphised callers).
#[inline(always)]
fn slot(v: Variant) -> usize {
    let op = OPS.iter().position(|&o| o == v.op).unwrap_or(0);
    let isa = ISAS.iter().position(|&i| i == v.isa).unwrap_or(0);
    let flush = FLUSHES.iter().position(|&f| f == v.flush).unwrap_or(0);
    (((op * 2 + usize::from(v.nontemporal)) * ISAS.len() + isa) * 2 + usize::from(v.movdir64b)) * FLUSHES.len() + flush
}

#[cfg(feature = "path-counters")]
fn variant_of(slot: usize) -> Variant {
    let flush = FLUSHES[slot % FLUSHES.len()];
    let rest = slot / FLUSHES.len();
    let movdir64b = rest % 2 == 1;
    let rest = rest / 2;
    let isa = ISAS[rest % ISAS.len()];
    let rest = rest / ISAS.len();
    Variant {
        op: OPS[rest / 2],
        nontemporal: rest % 2 == 1,
        isa,
        movdir64b,
        flush,
    }
}

#[cfg(feature = "path-counters")]
mod imp {
    use super::VARIANTS;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Counting starts with the first `reset()`, so a build with the feature (such
    /// as the crate's own benches, which get it through the dev-dependency) pays only this
    /// load until a test asks for counts.
    pub(super) static ENABLED: AtomicBool = AtomicBool::new(false);

    pub(super) const MSYNC: usize = VARIANTS;
    pub(super) const FLUSH: usize = VARIANTS + 1;
    pub(super) const FENCE: usize = VARIANTS + 2;
    pub(super) const DEEP: usize = VARIANTS + 3;

    thread_local! {
        pub(super) static COUNTS: [Cell<u64>; VARIANTS + 4] = const { [const { Cell::new(0) }; VARIANTS + 4] };
    }

    #[inline(always)]
    pub(super) fn bump(slot: usize) {
        if ENABLED.load(Ordering::Relaxed) {
            COUNTS.with(|c| c[slot].set(c[slot].get() + 1));
        }
    }

    pub(super) fn get(slot: usize) -> u64 {
        COUNTS.with(|c| c[slot].get())
    }
}

/// Records one run of `v`.
#[inline(always)]
pub(crate) fn count(v: Variant) {
    #[cfg(feature = "path-counters")]
    imp::bump(slot(v));
    #[cfg(not(feature = "path-counters"))]
    let _ = v;
}

/// Records one msync.
#[inline(always)]
pub(crate) fn count_msync() {
    #[cfg(feature = "path-counters")]
    imp::bump(imp::MSYNC);
}

/// Records one range flush (one call, not one per line, as libpmem2's persist test counts).
#[inline(always)]
pub(crate) fn count_flush() {
    #[cfg(feature = "path-counters")]
    imp::bump(imp::FLUSH);
}

/// Records one fence.
#[inline(always)]
pub(crate) fn count_fence() {
    #[cfg(feature = "path-counters")]
    imp::bump(imp::FENCE);
}

/// Records one write to a region's `deep_flush` file.
#[inline(always)]
pub(crate) fn count_deep_flush_write() {
    #[cfg(feature = "path-counters")]
    imp::bump(imp::DEEP);
}

/// One instruction or system call that moves stores towards persistence, as recorded where it
/// is issued (see `record()`, with the `path-counters` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A cache-line flush instruction (CLWB, CLFLUSHOPT, CLFLUSH, `DC CVAP`, `DC CVAC`) given
    /// `addr`; it writes back the whole line containing it.
    Flush {
        /// The instruction.
        instruction: FlushInstruction,
        /// The address operand.
        addr: usize,
    },
    /// Non-temporal stores (MOVNT*, MOVDIR64B) of the `len` bytes at `addr`.
    Stream {
        /// The first byte stored.
        addr: usize,
        /// How many bytes.
        len: usize,
    },
    /// A store fence (SFENCE; `DMB ISHST` on aarch64; a full fence elsewhere).
    Fence,
    /// `msync(addr, len, flags)`, as passed to the system call.
    Msync {
        /// The start address (page aligned).
        addr: usize,
        /// The length in bytes (the kernel rounds it up to whole pages).
        len: usize,
        /// The flags (`MS_SYNC`).
        flags: i32,
    },
}

#[cfg(feature = "path-counters")]
mod log {
    use super::*;

    /// How many threads are recording: the hooks in the copy loops pay one relaxed load
    /// while nobody records.
    pub(super) static RECORDERS: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        pub(super) static EVENTS: RefCell<Option<Vec<Event>>> = const { RefCell::new(None) };
    }

    #[inline(always)]
    pub(super) fn push(event: Event) {
        if RECORDERS.load(Ordering::Relaxed) != 0 {
            push_slow(event);
        }
    }

    #[inline(never)]
    fn push_slow(event: Event) {
        // `try_with`: a flush from a thread-local destructor finds the log gone.
        let _ = EVENTS.try_with(|log| {
            if let Some(events) = log.borrow_mut().as_mut() {
                events.push(event);
            }
        });
    }
}

/// Records a cache-line flush instruction given `addr`; called right after the instruction.
#[inline(always)]
pub(crate) fn record_flush(instruction: FlushInstruction, addr: usize) {
    #[cfg(feature = "path-counters")]
    log::push(Event::Flush { instruction, addr });
    #[cfg(not(feature = "path-counters"))]
    let _ = (instruction, addr);
}

/// Records non-temporal stores of `len` bytes at `addr`; called right after them.
// Only the x86_64 copy loops make non-temporal stores.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn record_stream(addr: *const u8, len: usize) {
    #[cfg(feature = "path-counters")]
    log::push(Event::Stream {
        addr: addr as usize,
        len,
    });
    #[cfg(not(feature = "path-counters"))]
    let _ = (addr, len);
}

/// Records a store fence; called right after the instruction.
#[inline(always)]
pub(crate) fn record_fence() {
    #[cfg(feature = "path-counters")]
    log::push(Event::Fence);
}

/// Records the arguments of an msync system call; called right after it returned.
#[inline(always)]
pub(crate) fn record_msync(addr: *const u8, len: usize, flags: i32) {
    #[cfg(feature = "path-counters")]
    log::push(Event::Msync {
        addr: addr as usize,
        len,
        flags,
    });
    #[cfg(not(feature = "path-counters"))]
    let _ = (addr, len, flags);
}

/// Starts recording this thread's [`Event`]s, discarding any earlier unreturned log.
#[cfg(feature = "path-counters")]
pub fn record() {
    log::EVENTS.with(|log| {
        if log.borrow_mut().replace(Vec::new()).is_none() {
            log::RECORDERS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Stops recording on this thread and returns the events since [`record`], in order (empty
/// if this thread was not recording).
#[cfg(feature = "path-counters")]
pub fn take_events() -> Vec<Event> {
    log::EVENTS.with(|log| match log.borrow_mut().take() {
        Some(events) => {
            log::RECORDERS.fetch_sub(1, Ordering::Relaxed);
            events
        }
        None => Vec::new(),
    })
}

/// How often this thread ran `v` since the last [`reset`].
#[cfg(feature = "path-counters")]
pub fn count_of(v: Variant) -> u64 {
    imp::get(slot(v))
}

/// Every variant this thread ran since the last [`reset`], with its count.
#[cfg(feature = "path-counters")]
pub fn snapshot() -> Vec<(Variant, u64)> {
    (0..VARIANTS)
        .filter_map(|s| match imp::get(s) {
            0 => None,
            n => Some((variant_of(s), n)),
        })
        .collect()
}

/// msync calls made by this thread (persist of PAGE mappings, copies into them, deep flush).
#[cfg(feature = "path-counters")]
pub fn msyncs() -> u64 {
    imp::get(imp::MSYNC)
}

/// Range flushes (CLWB/CLFLUSHOPT/CLFLUSH loops) started by persist/flush on this thread.
#[cfg(feature = "path-counters")]
pub fn flushes() -> u64 {
    imp::get(imp::FLUSH)
}

/// Fences (SFENCE) issued by persist, drain and draining copies on this thread.
#[cfg(feature = "path-counters")]
pub fn fences() -> u64 {
    imp::get(imp::FENCE)
}

/// Writes of `1` to a region's `deep_flush` sysfs file by this thread.
#[cfg(feature = "path-counters")]
pub fn deep_flush_writes() -> u64 {
    imp::get(imp::DEEP)
}

/// Sets every counter of this thread to zero, and starts counting (in every thread).
#[cfg(feature = "path-counters")]
pub fn reset() {
    imp::ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    imp::COUNTS.with(|c| c.iter().for_each(|x| x.set(0)));
}

#[cfg(all(test, feature = "path-counters"))]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip() {
        for s in 0..VARIANTS {
            assert_eq!(slot(variant_of(s)), s);
        }
        let v = Variant {
            op: Op::Memset,
            nontemporal: true,
            isa: CopyIsa::Avx,
            movdir64b: false,
            flush: FlushMode::Flush(FlushInstruction::Clwb),
        };
        assert_eq!(v.name(), "memset_movnt_avx_clwb");
        assert_eq!(Variant { movdir64b: true, ..v }.name(), "memset_movnt_movdir64b_clwb");
        assert_eq!(
            Variant {
                isa: CopyIsa::Libc,
                ..v
            }
            .name(),
            "memset_nodrain_libc"
        );
    }
}
