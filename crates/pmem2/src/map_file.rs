//! Open, size and map a file in one call.

use crate::config::{Config, Granularity, Protection, Sharing};
use crate::error::{Error, ErrorKind, Result};
use crate::map::Mapping;
use crate::source::Source;
use crate::sys;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Options for [`map_file`]. The defaults open an existing file read-write and map all of it
/// with PAGE granularity (which every platform offers), shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    /// Make the file at least this many bytes, allocating blocks with `posix_fallocate`.
    pub size: Option<u64>,
    /// Create the file if it does not exist.
    pub create: bool,
    /// The coarsest granularity the caller can work with.
    pub granularity: Granularity,
    /// Open read-only and map with `PROT_READ`.
    pub read_only: bool,
    /// Shared (writes reach the file) or private.
    pub sharing: Sharing,
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions {
            size: None,
            create: false,
            granularity: Granularity::Page,
            read_only: false,
            sharing: Sharing::Shared,
        }
    }
}

/// Opens `path` (creating and sizing it when asked), maps the whole file, and closes the fd.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("log");
/// let options = pmem2::FileOptions { size: Some(1 << 20), create: true, ..Default::default() };
/// let map = pmem2::map_file(&path, &options)?;
/// map.write(0, b"record")?;
/// map.persist(0, 6)?;
/// assert_eq!(&std::fs::read(&path)?[..6], b"record");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Os`] when the file cannot be opened, created or allocated (with the path in the
/// message); `EINVAL` for `create` or `size` together with `read_only`; otherwise as
/// [`Mapping::new`].
pub fn map_file(path: impl AsRef<Path>, options: &FileOptions) -> Result<Mapping> {
    let path = path.as_ref();
    if options.read_only && (options.create || options.size.is_some()) {
        return Err(Error::new(
            ErrorKind::Os(libc::EINVAL),
            format!("{}: a read-only mapping cannot create or size the file", path.display()),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(!options.read_only)
        .create(options.create)
        .truncate(false)
        .open(path)
        .map_err(|e| {
            Error::os(
                e.raw_os_error().unwrap_or(libc::EIO),
                &format!("open {}", path.display()),
            )
        })?;
    if let Some(size) = options.size.filter(|&s| s > 0) {
        sys::allocate(file.as_raw_fd(), size)
            .map_err(|e| Error::new(e.kind(), format!("{} ({})", e.message(), path.display())))?;
    }
    let mut config = Config::new();
    config
        .set_required_store_granularity(options.granularity)
        .set_sharing(options.sharing)
        .set_protection(if options.read_only {
            Protection::READ
        } else {
            Protection::READ | Protection::WRITE
        });
    Mapping::new(&config, &Source::from_fd(&file)?)
}
