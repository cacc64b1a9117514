//! The operating-system layer. Concept files call these functions and never `libc` directly.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("pmem2 currently supports Linux only; see the README's platform section");
