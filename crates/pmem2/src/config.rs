//! How to map: range, sharing, protection and the required store granularity.

use crate::error::{Error, ErrorKind, Result};
use std::os::fd::RawFd;

/// The smallest unit a store must be flushed in to become persistent, from the finest to the
/// coarsest. Values match `enum pmem2_granularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Granularity {
    /// Stores are persistent once they leave the CPU (eADR, or no durability needed):
    /// `persist` is only a fence.
    Byte = 0,
    /// Cache lines must be flushed (CLWB/CLFLUSHOPT/CLFLUSH) and fenced: DAX with MAP_SYNC.
    CacheLine = 1,
    /// Dirty pages must be written back by the kernel (`msync`): the page cache.
    Page = 2,
}

impl TryFrom<i64> for Granularity {
    type Error = Error;
    /// Checks a granularity number as `pmem2_config_set_required_store_granularity` does.
    fn try_from(value: i64) -> Result<Granularity> {
        match value {
            0 => Ok(Granularity::Byte),
            1 => Ok(Granularity::CacheLine),
            2 => Ok(Granularity::Page),
            _ => Err(Error::new(
                ErrorKind::GranularityNotSupported,
                format!("unknown granularity value {value}"),
            )),
        }
    }
}

/// Whether writes reach the file (`enum pmem2_sharing_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Sharing {
    /// `MAP_SHARED`: writes go to the file and are visible to other mappings of it.
    #[default]
    Shared = 0,
    /// `MAP_PRIVATE`: copy-on-write; the file never changes.
    Private = 1,
}

impl TryFrom<i64> for Sharing {
    type Error = Error;
    fn try_from(value: i64) -> Result<Sharing> {
        match value {
            0 => Ok(Sharing::Shared),
            1 => Ok(Sharing::Private),
            _ => Err(Error::new(
                ErrorKind::InvalidSharingValue,
                format!("unknown sharing value {value}"),
            )),
        }
    }
}

bitflags::bitflags! {
    /// Memory protection, with libpmem2's bit values (not the kernel's `PROT_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Protection: u32 {
        /// `PMEM2_PROT_EXEC`.
        const EXEC = 1 << 29;
        /// `PMEM2_PROT_READ`.
        const READ = 1 << 30;
        /// `PMEM2_PROT_WRITE`.
        const WRITE = 1 << 31;
    }
}

/// The constants' names as a program writes them: `PROT_READ | PROT_WRITE`, or `PROT_NONE`.
impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("PROT_NONE");
        }
        let names = [
            (Protection::READ, "PROT_READ"),
            (Protection::WRITE, "PROT_WRITE"),
            (Protection::EXEC, "PROT_EXEC"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                f.write_str(if first { "" } else { " | " })?;
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl Protection {
    /// `PMEM2_PROT_NONE`.
    pub const NONE: Protection = Protection::empty();

    /// Checks raw bits as `pmem2_config_set_protection` does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidProtFlag`] for any bit outside READ, WRITE and EXEC (such as the
    /// kernel's `PROT_WRITE`, 2).
    pub fn from_raw(bits: u32) -> Result<Protection> {
        Protection::from_bits(bits)
            .ok_or_else(|| Error::new(ErrorKind::InvalidProtFlag, format!("invalid flag {bits}")))
    }
}

/// A reusable description of a mapping (`struct pmem2_config`).
///
/// The modern form passes it with a [`Source`](crate::Source) to
/// [`Mapping::new`](crate::Mapping::new); the seed form (API 1.0) sets an fd on it with
/// [`Config::set_fd`] and calls [`map`](crate::map).
///
/// ```
/// use pmem2::{Config, Granularity, Protection, Sharing};
/// let mut config = Config::new();
/// config.set_required_store_granularity(Granularity::Page);
/// config.set_offset(4096)?;
/// config.set_length(8192);
/// config.set_sharing(Sharing::Private);
/// config.set_protection(Protection::READ | Protection::WRITE);
/// # Ok::<(), pmem2::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[doc(alias = "pmem2_config")]
pub struct Config {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) granularity: Option<Granularity>,
    pub(crate) sharing: Sharing,
    /// `None`: READ|WRITE in the modern form, the fd's access mode in the seed form.
    pub(crate) protection: Option<Protection>,
    pub(crate) fd: Option<RawFd>,
}

impl Config {
    /// Defaults: offset 0, length 0 (to the end of the source), shared, no granularity set.
    #[doc(alias = "pmem2_config_new")]
    pub fn new() -> Config {
        Config::default()
    }

    /// The strictest granularity the caller can work with; mapping fails if the platform
    /// only offers a coarser one.
    #[doc(alias = "pmem2_config_set_required_store_granularity")]
    pub fn set_required_store_granularity(&mut self, granularity: Granularity) -> &mut Config {
        self.granularity = Some(granularity);
        self
    }

    /// Where in the source the mapping starts; must be a multiple of the source alignment
    /// (checked when mapping).
    ///
    /// # Errors
    /// [`ErrorKind::OffsetOutOfRange`] above `i64::MAX`.
    #[doc(alias = "pmem2_config_set_offset")]
    pub fn set_offset(&mut self, offset: u64) -> Result<&mut Config> {
        if offset > i64::MAX as u64 {
            return Err(Error::new(
                ErrorKind::OffsetOutOfRange,
                format!("offset {offset} is greater than INT64_MAX"),
            ));
        }
        self.offset = offset;
        Ok(self)
    }

    /// How many bytes to map; 0 maps to the end of the source.
    #[doc(alias = "pmem2_config_set_length")]
    pub fn set_length(&mut self, length: u64) -> &mut Config {
        self.length = length;
        self
    }

    /// Shared (the default) or private.
    #[doc(alias = "pmem2_config_set_sharing")]
    pub fn set_sharing(&mut self, sharing: Sharing) -> &mut Config {
        self.sharing = sharing;
        self
    }

    /// The protection of the mapping.
    #[doc(alias = "pmem2_config_set_protection")]
    pub fn set_protection(&mut self, protection: Protection) -> &mut Config {
        self.protection = Some(protection);
        self
    }

    /// Seed form (libpmem2 API 1.0): the file to map with [`map`](crate::map). The fd is not
    /// duplicated; keep it open until `map` returns. It is checked when mapping: a negative,
    /// closed or write-only fd fails there with [`ErrorKind::InvalidFileHandle`].
    #[doc(alias = "pmem2_config_set_fd")]
    pub fn set_fd(&mut self, fd: RawFd) -> &mut Config {
        self.fd = Some(fd);
        self
    }

    /// Seed form: the fd set with [`Config::set_fd`], if any.
    pub fn fd(&self) -> Option<RawFd> {
        self.fd
    }

    /// Seed form: the size of the file set with [`Config::set_fd`].
    ///
    /// # Errors
    /// [`ErrorKind::FileHandleNotSet`] without an fd; otherwise as [`Source::from_raw_fd`](crate::Source::from_raw_fd)
    /// and [`Source::size`](crate::Source::size).
    #[doc(alias = "pmem2_config_get_file_size")]
    pub fn file_size(&self) -> Result<u64> {
        self.seed_source()?.size()
    }

    /// The offset set with [`Config::set_offset`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The length set with [`Config::set_length`].
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The granularity set with [`Config::set_required_store_granularity`], if any.
    pub fn required_store_granularity(&self) -> Option<Granularity> {
        self.granularity
    }

    /// The sharing mode.
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The protection set with [`Config::set_protection`], if any.
    pub fn protection(&self) -> Option<Protection> {
        self.protection
    }

    pub(crate) fn seed_source(&self) -> Result<crate::Source> {
        let fd = self.fd.ok_or_else(|| {
            Error::new(
                ErrorKind::FileHandleNotSet,
                "no file descriptor set in config (call set_fd first)",
            )
        })?;
        crate::Source::from_raw_fd(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // libpmem2 pmem2_config TEST3..TEST12.
    #[test]
    fn setters_validate_as_libpmem2() {
        let mut cfg = Config::new();
        assert_eq!(cfg.required_store_granularity(), None);
        cfg.set_required_store_granularity(Granularity::Byte)
            .set_required_store_granularity(Granularity::Page);
        assert_eq!(cfg.required_store_granularity(), Some(Granularity::Page));
        assert_eq!(
            Granularity::try_from(999).unwrap_err().kind(),
            ErrorKind::GranularityNotSupported
        );
        assert_eq!(
            cfg.set_offset(i64::MAX as u64 + 1).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        let page = crate::page_size() as u64;
        assert!(cfg.set_offset((i64::MAX as u64 / page) * page).is_ok());
        assert_eq!(cfg.sharing(), Sharing::Shared);
        assert_eq!(
            Sharing::try_from(777).unwrap_err().kind(),
            ErrorKind::InvalidSharingValue
        );
        for bits in [1 << 30, 1 << 31, 1 << 29, 0, (1 << 31) | (1 << 30) | (1 << 29)] {
            assert!(Protection::from_raw(bits).is_ok(), "{bits}");
        }
        assert_eq!(Protection::from_raw(2).unwrap_err().kind(), ErrorKind::InvalidProtFlag);
        assert_eq!(Protection::NONE.to_string(), "PROT_NONE");
        assert_eq!(Protection::READ.to_string(), "PROT_READ");
        assert_eq!(
            (Protection::WRITE | Protection::READ).to_string(),
            "PROT_READ | PROT_WRITE"
        );
        assert_eq!(Protection::all().to_string(), "PROT_READ | PROT_WRITE | PROT_EXEC");
    }

    #[test]
    fn seed_form_without_fd_reports_file_handle_not_set() {
        assert_eq!(
            Config::new().file_size().unwrap_err().kind(),
            ErrorKind::FileHandleNotSet
        );
    }
}
