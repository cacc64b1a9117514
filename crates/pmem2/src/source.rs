//! What a mapping maps: an open file (regular or device DAX) or anonymous memory.

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, AccessMode, InodeKind};
use crate::sysfs::Sysfs;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// The kind of file behind an fd source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file, possibly on a DAX filesystem.
    Regular,
    /// A device DAX character device (`/dev/daxX.Y`).
    DeviceDax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Anon {
        size: usize,
    },
    Fd {
        fd: RawFd,
        file_type: FileType,
        dev: u64,
        ino: u64,
        rdev: u64,
    },
}

/// The data source of a mapping (`struct pmem2_source`).
///
/// An fd source does not own or duplicate its descriptor: keep the fd open until
/// [`Mapping::new`](crate::Mapping::new) returns. The mapping does not need it afterwards.
///
/// ```
/// use std::io::Write;
/// let mut file = tempfile::tempfile()?;
/// file.write_all(&[0u8; 8192])?;
/// let source = pmem2::Source::from_fd(&file)?;
/// assert_eq!(source.size()?, 8192);
/// assert_eq!(source.alignment()?, pmem2::page_size());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "pmem2_source")]
pub struct Source {
    pub(crate) kind: SourceKind,
}

impl Source {
    /// A source for an open file.
    ///
    /// # Errors
    /// As [`Source::from_raw_fd`].
    #[doc(alias = "pmem2_source_from_fd")]
    pub fn from_fd(fd: &impl AsFd) -> Result<Source> {
        Source::from_raw_fd(fd.as_fd().as_raw_fd())
    }

    /// A source for a raw file descriptor, checked as libpmem2 checks it.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidFileHandle`]: `fd` is negative, not open, or opened `O_WRONLY`.
    /// - [`ErrorKind::InvalidFileType`]: a directory, FIFO, socket, block device, or a
    ///   character device that is not device DAX.
    /// - [`ErrorKind::Os`]: another `fcntl`/`fstat` failure, or the sysfs lookup of a
    ///   character device failed.
    #[doc(alias = "pmem2_source_from_fd")]
    pub fn from_raw_fd(fd: RawFd) -> Result<Source> {
        if fd < 0 {
            return Err(Error::new(
                ErrorKind::InvalidFileHandle,
                format!("invalid file descriptor {fd}"),
            ));
        }
        if sys::access_mode(fd)? == AccessMode::WriteOnly {
            return Err(Error::new(
                ErrorKind::InvalidFileHandle,
                format!("fd {fd} must be open with O_RDONLY or O_RDWR, not O_WRONLY"),
            ));
        }
        let st = sys::fstat(fd)?;
        let file_type = match st.kind() {
            InodeKind::Regular => FileType::Regular,
            InodeKind::Directory => {
                return Err(Error::new(
                    ErrorKind::InvalidFileType,
                    format!("fd {fd} is a directory, which cannot be mapped"),
                ))
            }
            InodeKind::CharDevice => {
                let (major, minor) = st.rdev_major_minor();
                if !Sysfs::from_env().is_device_dax(major, minor)? {
                    return Err(Error::new(
                        ErrorKind::InvalidFileType,
                        format!("fd {fd} is character device {major}:{minor}, which is not device DAX"),
                    ));
                }
                FileType::DeviceDax
            }
            InodeKind::Other(fmt) => {
                return Err(Error::new(
                    ErrorKind::InvalidFileType,
                    format!("fd {fd}: file type 0{fmt:o} not supported"),
                ))
            }
        };
        Ok(Source {
            kind: SourceKind::Fd {
                fd,
                file_type,
                dev: st.dev,
                ino: st.ino,
                rdev: st.rdev,
            },
        })
    }

    /// An anonymous, zero-filled source of `size` bytes. Mapping offsets are ignored for it.
    #[doc(alias = "pmem2_source_from_anon")]
    pub fn from_anon(size: usize) -> Source {
        Source {
            kind: SourceKind::Anon { size },
        }
    }

    /// The descriptor of an fd source.
    ///
    /// # Errors
    /// [`ErrorKind::FileDescriptorNotSet`] for an anonymous source.
    #[doc(alias = "pmem2_source_get_fd")]
    pub fn fd(&self) -> Result<RawFd> {
        match self.kind {
            SourceKind::Fd { fd, .. } => Ok(fd),
            SourceKind::Anon { .. } => Err(Error::new(
                ErrorKind::FileDescriptorNotSet,
                "File descriptor is not set, source type does not support fd",
            )),
        }
    }

    /// `Some(file type)` for an fd source, `None` for an anonymous one.
    pub fn file_type(&self) -> Option<FileType> {
        match self.kind {
            SourceKind::Fd { file_type, .. } => Some(file_type),
            SourceKind::Anon { .. } => None,
        }
    }

    /// The size in bytes: the anonymous size, the file size (read now), or the device DAX size.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidFileHandle`] if the fd was closed or now names another file (also
    /// for device DAX); sysfs errors for device DAX.
    #[doc(alias = "pmem2_source_size")]
    pub fn size(&self) -> Result<u64> {
        match self.kind {
            SourceKind::Anon { size } => Ok(size as u64),
            SourceKind::Fd {
                fd,
                file_type: FileType::Regular,
                dev,
                ino,
                ..
            } => {
                let size = fstat_same_file(fd, dev, ino)?.size;
                u64::try_from(size).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidFileHandle,
                        format!("kernel says size of regular file is negative ({size})"),
                    )
                })
            }
            SourceKind::Fd {
                fd,
                file_type: FileType::DeviceDax,
                rdev,
                dev,
                ino,
            } => {
                // libpmem2 fstats the fd on every call for device DAX too: a closed fd is
                // InvalidFileHandle, not the size.
                fstat_same_file(fd, dev, ino)?;
                Sysfs::from_env().device_dax_size(libc::major(rdev), libc::minor(rdev))
            }
        }
    }

    /// The alignment that mapping offsets and lengths must respect: the page size, or the
    /// device DAX region's alignment.
    ///
    /// # Errors
    /// Device DAX only: sysfs errors, or [`ErrorKind::InvalidAlignmentValue`] when the value is
    /// not a power of two.
    #[doc(alias = "pmem2_source_alignment")]
    pub fn alignment(&self) -> Result<usize> {
        let align = match self.kind {
            SourceKind::Fd {
                file_type: FileType::DeviceDax,
                rdev,
                ..
            } => {
                let value = Sysfs::from_env().device_dax_alignment(libc::major(rdev), libc::minor(rdev))?;
                usize::try_from(value).unwrap_or(0)
            }
            _ => sys::page_size(),
        };
        if !align.is_power_of_two() {
            return Err(Error::new(
                ErrorKind::InvalidAlignmentValue,
                format!("alignment ({align}) has to be a power of two"),
            ));
        }
        Ok(align)
    }

    /// Checks that an fd source's descriptor still names the file it named at creation, so a
    /// closed-and-reused fd number cannot silently map another file.
    pub(crate) fn verify_fd_identity(&self) -> Result<()> {
        if let SourceKind::Fd { fd, dev, ino, .. } = self.kind {
            fstat_same_file(fd, dev, ino)?;
        }
        Ok(())
    }
}

/// `fstat` of a source's descriptor, refused when the number now names another file than the
/// one `(dev, ino)` the source was made from (closed and reused for another file).
fn fstat_same_file(fd: RawFd, dev: u64, ino: u64) -> Result<sys::FileStat> {
    let st = sys::fstat(fd)?;
    if (st.dev, st.ino) != (dev, ino) {
        return Err(Error::new(
            ErrorKind::InvalidFileHandle,
            format!("fd {fd} now refers to a different file than when the source was created"),
        ));
    }
    Ok(st)
}
