//! Every sysfs read pmem2 makes goes through [`Sysfs`], rooted at `/sys` or at the
//! directory named by `PMEM2_SYSFS_ROOT`, so tests can point it at a generated tree.

use crate::error::{Error, ErrorKind, Result};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment variable that moves the sysfs root (for tests).
pub const SYSFS_ROOT_ENV: &str = "PMEM2_SYSFS_ROOT";

/// A view of sysfs below one root directory.
///
/// ```
/// let sysfs = pmem2::Sysfs::new("/nonexistent");
/// assert!(!sysfs.platform_has_eadr()); // no nd bus: no eADR
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Sysfs {
        Sysfs::from_env()
    }
}

impl Sysfs {
    /// sysfs at `root` (normally `/sys`).
    pub fn new(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// sysfs at `$PMEM2_SYSFS_ROOT`, or `/sys` when it is unset or empty.
    pub fn from_env() -> Sysfs {
        match std::env::var_os(SYSFS_ROOT_ENV) {
            Some(root) if !root.is_empty() => Sysfs::new(root),
            _ => Sysfs::new("/sys"),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn char_dev(&self, major: u32, minor: u32) -> PathBuf {
        self.root.join(format!("dev/char/{major}:{minor}"))
    }

    /// The real sysfs directory of character device `major:minor`.
    fn device_dir(&self, major: u32, minor: u32) -> Result<PathBuf> {
        let dev = self.char_dev(major, minor);
        fs::canonicalize(&dev).map_err(|e| {
            Error::new(
                ErrorKind::DaxRegionNotFound,
                format!("cannot find dax region: {}: {e}", dev.display()),
            )
        })
    }

    /// Whether character device `major:minor` belongs to the `dax` subsystem (device DAX).
    pub fn is_device_dax(&self, major: u32, minor: u32) -> Result<bool> {
        let link = self.char_dev(major, minor).join("subsystem");
        match fs::canonicalize(&link) {
            Ok(path) => Ok(path.file_name().is_some_and(|name| name == "dax")),
            Err(err) => Err(Error::os(
                err.raw_os_error().unwrap_or(libc::EIO),
                &format!("realpath {}", link.display()),
            )),
        }
    }

    /// The size in bytes of device DAX `major:minor` (`dev/char/M:m/size`).
    pub fn device_dax_size(&self, major: u32, minor: u32) -> Result<u64> {
        let path = self.char_dev(major, minor).join("size");
        let text = read_small(&path).map_err(|e| {
            Error::new(
                ErrorKind::DaxRegionNotFound,
                format!("cannot read device DAX size from {}: {e}", path.display()),
            )
        })?;
        parse_line_u64(&text).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidSizeFormat,
                format!("invalid device size format '{}'", text.trim_end()),
            )
        })
    }

    /// The alignment of device DAX `major:minor`: the nearest `dax_region/align` found walking
    /// up from the device's sysfs directory.
    pub fn device_dax_alignment(&self, major: u32, minor: u32) -> Result<u64> {
        let real = self.device_dir(major, minor)?;
        let stop = fs::canonicalize(self.root.join("devices")).unwrap_or_else(|_| self.root.join("devices"));
        let mut dir = Some(real.as_path());
        while let Some(d) = dir {
            if d == stop || !d.starts_with(&stop) && d.parent().is_none() {
                break;
            }
            let candidate = d.join("dax_region/align");
            if let Ok(text) = read_small(&candidate) {
                return parse_line_u64(&text).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidAlignmentFormat,
                        format!(
                            "invalid alignment format '{}' in {}",
                            text.trim_end(),
                            candidate.display()
                        ),
                    )
                });
            }
            dir = d.parent();
        }
        Err(Error::new(
            ErrorKind::InvalidAlignmentFormat,
            format!("no dax_region/align above {}", real.display()),
        ))
    }

    /// Whether every nd region reports `persistence_domain` `cpu_cache` (eADR): CPU caches are
    /// inside the persistence domain, so stores need no flush. Like libpmem2, a platform with no
    /// nd bus, no region, or any region in another domain has no eADR.
    pub fn platform_has_eadr(&self) -> bool {
        let Ok(entries) = fs::read_dir(self.root.join("bus/nd/devices")) else {
            return false;
        };
        let mut regions = 0;
        for entry in entries.flatten() {
            let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            if !is_link || !entry.file_name().to_string_lossy().contains("region") {
                continue;
            }
            regions += 1;
            match read_small(&entry.path().join("persistence_domain")) {
                Ok(text) if text.strip_suffix('\n') == Some("cpu_cache") => {}
                _ => return false,
            }
        }
        regions > 0
    }
}

impl Sysfs {
    /// The number `N` of the nd region (`regionN`) that device DAX `major:minor` belongs
    /// to: the nearest `regionN` directory above the device's sysfs directory.
    ///
    /// # Errors
    /// [`ErrorKind::DaxRegionNotFound`] if the device or its region cannot be found.
    pub fn device_dax_region(&self, major: u32, minor: u32) -> Result<u32> {
        let real = self.device_dir(major, minor)?;
        real.ancestors()
            .filter_map(|dir| dir.file_name()?.to_str()?.strip_prefix("region")?.parse().ok())
            .next()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DaxRegionNotFound,
                    format!("no regionN directory above {}", real.display()),
                )
            })
    }

    /// Deep flush of nd region `region`: reads `bus/nd/devices/regionN/deep_flush` and, unless
    /// it says `0` (the kernel reports no flush is needed), writes `1` to it. Returns whether
    /// it wrote. A region without the file gets nothing, as in libpmem2: the kernel leaves it
    /// out where it cannot tell whether the region needs a flush (no NVDIMM behind it, as for
    /// virtio-pmem or legacy e820 pmem).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] if the region does not exist, or its file cannot be read or written
    /// (libpmem2 only logs these).
    pub fn region_deep_flush(&self, region: u32) -> Result<bool> {
        let dir = self.root.join(format!("bus/nd/devices/region{region}"));
        let path = dir.join("deep_flush");
        let os = |e: std::io::Error, what: &str| {
            Error::os(
                e.raw_os_error().unwrap_or(libc::EIO),
                &format!("{what} {}", path.display()),
            )
        };
        let mut state = [0u8; 2];
        let read = match fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => return Ok(false),
            file => file.and_then(|mut f| f.read(&mut state)).map_err(|e| os(e, "read"))?,
        };
        if &state[..read] == b"0\n" {
            return Ok(false);
        }
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"1"))
            .map_err(|e| os(e, "write"))?;
        Ok(true)
    }
}

/// Reads at most 64 bytes: sysfs attributes are short, and a huge file is not one.
fn read_small(path: &Path) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(64);
    fs::File::open(path)?.take(64).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
}

/// A number followed by exactly one newline, in decimal or `0x` hex (as `strtoull(.., 0)`).
fn parse_line_u64(text: &str) -> Option<u64> {
    let body = text.strip_suffix('\n')?;
    match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => body.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn region(root: &Path, name: &str, domain: Option<&str>) {
        let dir = root.join("devices/ndbus0").join(name);
        fs::create_dir_all(&dir).unwrap();
        if let Some(d) = domain {
            fs::write(dir.join("persistence_domain"), d).unwrap();
        }
        let bus = root.join("bus/nd/devices");
        fs::create_dir_all(&bus).unwrap();
        symlink(&dir, bus.join(name)).unwrap();
    }

    #[test]
    fn eadr_needs_every_region_in_cpu_cache() {
        let t = tree();
        let sysfs = Sysfs::new(t.path());
        assert!(!sysfs.platform_has_eadr(), "no nd bus");
        fs::create_dir_all(t.path().join("bus/nd/devices")).unwrap();
        assert!(!sysfs.platform_has_eadr(), "no region");
        region(t.path(), "region0", Some("cpu_cache\n"));
        assert!(sysfs.platform_has_eadr());
        region(t.path(), "region1", Some("memory_controller\n"));
        assert!(!sysfs.platform_has_eadr());
    }

    #[test]
    fn eadr_rejects_missing_newline_and_empty_domain() {
        for domain in [Some("cpu_cache"), Some(""), None] {
            let t = tree();
            region(t.path(), "region0", domain);
            assert!(!Sysfs::new(t.path()).platform_has_eadr(), "{domain:?}");
        }
    }

    #[test]
    fn device_dax_is_found_through_the_subsystem_link() {
        let t = tree();
        let dev = t.path().join("devices/platform/region0/dax0.0/dax0.0");
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(t.path().join("class/dax")).unwrap();
        symlink(t.path().join("class/dax"), dev.join("subsystem")).unwrap();
        fs::write(dev.join("size"), "0x40000000\n").unwrap();
        fs::create_dir_all(t.path().join("devices/platform/region0/dax0.0/dax_region")).unwrap();
        fs::write(
            t.path().join("devices/platform/region0/dax0.0/dax_region/align"),
            "2097152\n",
        )
        .unwrap();
        fs::create_dir_all(t.path().join("dev/char")).unwrap();
        symlink(&dev, t.path().join("dev/char/250:0")).unwrap();

        let sysfs = Sysfs::new(t.path());
        assert!(sysfs.is_device_dax(250, 0).unwrap());
        assert_eq!(sysfs.device_dax_size(250, 0).unwrap(), 1 << 30);
        assert_eq!(sysfs.device_dax_alignment(250, 0).unwrap(), 2 << 20);
        assert_eq!(
            sysfs.is_device_dax(1, 3).unwrap_err().kind(),
            ErrorKind::Os(libc::ENOENT)
        );
    }

    #[test]
    fn deep_flush_finds_the_region_and_skips_zero() {
        let t = tree();
        let dev = t.path().join("devices/ndbus0/region3/dax3.0/dax/dax3.0");
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(t.path().join("dev/char")).unwrap();
        symlink(&dev, t.path().join("dev/char/251:7")).unwrap();
        let sysfs = Sysfs::new(t.path());
        assert_eq!(sysfs.device_dax_region(251, 7).unwrap(), 3);
        assert_eq!(
            sysfs.device_dax_region(251, 8).unwrap_err().kind(),
            ErrorKind::DaxRegionNotFound
        );
        let region = t.path().join("bus/nd/devices/region3");
        fs::create_dir_all(&region).unwrap();
        let flag = region.join("deep_flush");
        fs::write(&flag, "0\n").unwrap();
        assert!(!sysfs.region_deep_flush(3).unwrap(), "\"0\\n\" means no flush needed");
        assert_eq!(fs::read_to_string(&flag).unwrap(), "0\n");
        fs::write(&flag, "1\n").unwrap();
        assert!(sysfs.region_deep_flush(3).unwrap());
        assert_eq!(
            fs::read_to_string(&flag).unwrap(),
            "1\n",
            "wrote \"1\" over the first byte"
        );
        fs::write(&flag, "").unwrap();
        assert!(sysfs.region_deep_flush(3).unwrap(), "empty: not \"0\\n\", so flush");
        fs::remove_file(&flag).unwrap();
        assert!(!sysfs.region_deep_flush(3).unwrap(), "no deep_flush: nothing to write");
        assert!(!flag.exists());
        assert!(matches!(
            sysfs.region_deep_flush(4).unwrap_err().kind(),
            ErrorKind::Os(libc::ENOENT)
        ));
    }

    #[test]
    fn size_without_newline_is_a_format_error() {
        let t = tree();
        let dev = t.path().join("dev/char/250:1");
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("size"), "4096").unwrap();
        let err = Sysfs::new(t.path()).device_dax_size(250, 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSizeFormat);
    }
}
