//! The operating-system layer. Concept files call these functions and never `libc` directly.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

/// The architecture half of fault recovery (`crate::fault`): the guarded call, recovery stub and
/// signal-context rewrite. Other architectures run guarded operations unguarded.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[path = "fault_x86_64.rs"]
pub(crate) mod fault_arch;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
#[path = "fault_aarch64.rs"]
pub(crate) mod fault_arch;

#[cfg(not(target_os = "linux"))]
compile_error!("pmem2 currently supports Linux only; see the README's platform section");
