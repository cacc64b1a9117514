//! # pmem2
//!
//! Persistent-memory file mapping with the semantics of PMDK's libpmem2: map a file so that
//! stores to it are made durable with CPU instructions (CLWB, non-temporal stores) when the
//! platform allows it, and with `msync` when it does not — and know which, through the
//! mapping's [`Granularity`].
//!
//! ```
//! use pmem2::{Config, Granularity, Mapping, Source};
//!
//! let file = tempfile::tempfile()?;
//! file.set_len(4 << 20)?;
//! let mut config = Config::new();
//! // The coarsest granularity this program can handle: PAGE works everywhere.
//! config.set_required_store_granularity(Granularity::Page);
//! let map = Mapping::new(&config, &Source::from_fd(&file)?)?;
//! map.write(100, b"durable")?;
//! map.persist(100, 7)?; // msync on the page cache, CLWB + SFENCE on DAX
//! println!("granularity {:?}, MAP_SYNC {}", map.store_granularity(), map.map_sync());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every error carries libpmem2's code: [`Error::code`] is `-100006` where libpmem2 returns
//! `PMEM2_E_MAP_RANGE`, or `-errno`.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod config;
mod error;
mod fault;
mod granularity;
mod map;
mod map_file;
pub mod mem;
pub mod persist;
mod seed;
mod source;
mod sys;
mod sysfs;

pub use config::{Config, Granularity, Protection, Sharing};
pub use error::{errno_name, Error, ErrorKind, Result, ERROR_CODES};
pub use granularity::FORCE_GRANULARITY_ENV;
pub use map::{Mapping, ReservedRange};
pub use map_file::{map_file, map_file_with_private_alias, FileOptions};
pub use mem::{MemFlags, MemcpyFn, MemmoveFn, MemsetFn};
pub use persist::{DrainFn, FlushFn, PersistFn};
pub use seed::map;
pub use source::{FileType, Source};
pub use sysfs::{Sysfs, SYSFS_ROOT_ENV};

/// The system page size: the alignment of regular-file and anonymous sources.
pub fn page_size() -> usize {
    sys::page_size()
}
