//! The seed form of the API (libpmem2 API 1.0, `pmem2_map.3`): the fd lives in the config.
//!
//! It differs from [`Mapping::new`] only in defaults: an unset granularity means PAGE, an
//! unset protection follows the fd's access mode (O_RDONLY maps read-only), and an mmap
//! `EACCES` is returned as `-EACCES`.

use crate::config::Config;
use crate::error::Result;
use crate::map::{Form, Mapping};

/// Maps the file set with [`Config::set_fd`] (`pmem2_map` of API 1.0).
///
/// ```
/// let file = tempfile::tempfile()?;
/// file.set_len(8192)?;
/// let mut config = pmem2::Config::new();
/// config.set_fd(std::os::fd::AsRawFd::as_raw_fd(&file));
/// assert_eq!(config.file_size()?, 8192);
/// let map = pmem2::map(&config)?;
/// assert_eq!(map.store_granularity(), pmem2::Granularity::Page);
/// map.unmap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ErrorKind::FileHandleNotSet`](crate::ErrorKind::FileHandleNotSet) without an fd;
/// [`ErrorKind::InvalidFileHandle`](crate::ErrorKind::InvalidFileHandle) for a negative,
/// closed or write-only fd; [`ErrorKind::MapRange`](crate::ErrorKind::MapRange) when offset +
/// length overflows or passes the end of the file; `-errno` for other mmap failures; otherwise
/// as [`Mapping::new`].
#[doc(alias = "pmem2_map")]
pub fn map(config: &Config) -> Result<Mapping> {
    let source = config.seed_source()?;
    Mapping::create(config, &source, Form::Seed)
}
