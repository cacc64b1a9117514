//! Architectures without a known flush instruction: a full fence only.

use super::FlushInstruction;
use std::sync::atomic::{fence, Ordering};

pub(super) fn detect_flush() -> FlushInstruction {
    FlushInstruction::None
}

pub(super) fn flush_range(_kind: FlushInstruction, _start: usize, _end: usize) {}

pub(super) fn store_fence() {
    fence(Ordering::SeqCst);
}
