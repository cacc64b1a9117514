//! Architectures without a known flush instruction: a full fence only.

use super::{CpuFeatures, FlushInstruction};
use std::sync::atomic::{fence, Ordering};

pub(super) fn features() -> CpuFeatures {
    CpuFeatures {
        other_flush: Some(FlushInstruction::None),
        ..CpuFeatures::default()
    }
}

pub(super) fn flush_range(_kind: FlushInstruction, _start: usize, _end: usize) {}

pub(super) fn store_fence() {
    fence(Ordering::SeqCst);
    crate::mem::counters::record_fence();
}
