//! Open, size and map a file in one call.

use crate::config::{Config, Granularity, Protection, Sharing};
use crate::error::{Error, ErrorKind, Result};
use crate::map::Mapping;
use crate::source::Source;
use crate::sys;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// Options for [`map_file`]. The defaults open an existing file read-write and map all of it
/// with PAGE granularity (which every platform offers), shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    /// Make the file at least this many bytes, allocating blocks with `posix_fallocate`.
    pub size: Option<u64>,
    /// Create the file if it does not exist (then `size` is required: an empty file cannot be
    /// mapped).
    pub create: bool,
    /// The coarsest granularity the caller can work with.
    pub granularity: Granularity,
    /// Open read-only and map with `PROT_READ`.
    pub read_only: bool,
    /// Shared (writes reach the file) or private (copy-on-write: the file is opened read-only
    /// unless `create` or `size` needs to change it).
    pub sharing: Sharing,
    /// Where the mapping starts in the file: a multiple of the page size, checked as
    /// [`Config::set_offset`] and [`Mapping::new`] check it.
    pub offset: u64,
    /// How many bytes to map; 0 maps from `offset` to the end of the file.
    pub length: u64,
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions {
            size: None,
            create: false,
            granularity: Granularity::Page,
            read_only: false,
            sharing: Sharing::Shared,
            offset: 0,
            length: 0,
        }
    }
}

/// Opens `path` (creating and sizing it when asked), maps it (all of it, or the window
/// `offset`/`length`), and closes the fd.
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
/// [`ErrorKind::Os`] when the file cannot be opened, created or allocated, with
/// [`Error::path`] and [`Error::syscall`] set; `EINVAL` for `create` or `size` together with
/// `read_only`, and for `create` of a missing file without `size` (nothing is created);
/// otherwise as [`Mapping::new`], with messages naming the path instead of the internal fd.
/// A file this call created is removed again when mapping it fails.
pub fn map_file(path: impl AsRef<Path>, options: &FileOptions) -> Result<Mapping> {
    map_file_and(path.as_ref(), options, |_, _| ()).map(|(mapping, ())| mapping)
}

/// As [`map_file`], and for a mapping without `PROT_WRITE` also its
/// [`Mapping::private_alias`], made while the file is still open. The alias's own failure (a
/// device DAX file, which has no private mappings) is returned beside the mapping rather than
/// failing it; a writable mapping has no alias (`None`).
///
/// # Errors
/// As [`map_file`].
pub fn map_file_with_private_alias(
    path: impl AsRef<Path>,
    options: &FileOptions,
) -> Result<(Mapping, Option<Result<Mapping>>)> {
    map_file_and(path.as_ref(), options, |mapping, source| {
        (!mapping.protection().contains(Protection::WRITE)).then(|| mapping.private_alias(source))
    })
}

/// [`map_file`], then `also` on the mapping and the source of the still-open file.
fn map_file_and<T>(
    path: &Path,
    options: &FileOptions,
    also: impl FnOnce(&Mapping, &Source) -> T,
) -> Result<(Mapping, T)> {
    if options.read_only && (options.create || options.size.is_some()) {
        return Err(Error::new(
            ErrorKind::Os(libc::EINVAL),
            format!("{}: a read-only mapping cannot create or size the file", path.display()),
        )
        .with_path(path));
    }
    let (file, created) = open(path, options)?;
    let mapped = map_open_file(&file, path, options, also);
    if mapped.is_err() && created {
        // Never leave behind an empty or half-made file this call created.
        let _ = std::fs::remove_file(path);
    }
    mapped
}

/// Opens `path` as `options` say; returns the file and whether this call created it.
fn open(path: &Path, options: &FileOptions) -> Result<(File, bool)> {
    let changes_file = options.create || options.size.is_some_and(|s| s > 0);
    // A private mapping never writes the file: a read-only fd suffices (and works for files
    // the caller may only read), unless the file itself must be created or grown.
    let write = !options.read_only && (options.sharing == Sharing::Shared || changes_file);
    let open_error = |e: std::io::Error| {
        Error::os(
            e.raw_os_error().unwrap_or(libc::EIO),
            &format!("open {}", path.display()),
        )
        .with_path(path)
        .with_syscall("open")
    };
    let existing = OpenOptions::new().read(true).write(write).open(path);
    match existing {
        Ok(file) => Ok((file, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && options.create => {
            if options.size.is_none_or(|s| s == 0) {
                return Err(Error::new(
                    ErrorKind::Os(libc::EINVAL),
                    format!(
                        "{}: does not exist, and creating it needs a size (an empty file cannot be mapped)",
                        path.display()
                    ),
                )
                .with_path(path));
            }
            match OpenOptions::new().read(true).write(true).create_new(true).open(path) {
                Ok(file) => Ok((file, true)),
                // Another process created it meanwhile: use that file, as O_CREAT would.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map(|f| (f, false))
                    .map_err(open_error),
                Err(e) => Err(open_error(e)),
            }
        }
        Err(e) => Err(open_error(e)),
    }
}

fn map_open_file<T>(
    file: &File,
    path: &Path,
    options: &FileOptions,
    also: impl FnOnce(&Mapping, &Source) -> T,
) -> Result<(Mapping, T)> {
    let fd = file.as_raw_fd();
    let name = |e: Error| naming_path(e, fd, path);
    if let Some(size) = options.size.filter(|&s| s > 0) {
        sys::allocate(fd, size).map_err(|e| {
            Error::new(e.kind(), format!("{} ({})", e.message(), path.display()))
                .with_path(path)
                .with_syscall("posix_fallocate")
        })?;
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
    config.set_offset(options.offset).map_err(name)?;
    config.set_length(options.length);
    let source = Source::from_fd(file).map_err(name)?;
    let mapping = Mapping::new(&config, &source).map_err(name)?;
    let extra = also(&mapping, &source);
    Ok((mapping, extra))
}

/// The caller gave a path, not an fd: say which file the error is about.
fn naming_path(err: Error, fd: RawFd, path: &Path) -> Error {
    let message = err.message().replace(&format!("fd {fd}"), &path.display().to_string());
    let syscall = err.syscall();
    let mut named = Error::new(err.kind(), message).with_path(path);
    if let Some(syscall) = syscall {
        named = named.with_syscall(syscall);
    }
    named
}
