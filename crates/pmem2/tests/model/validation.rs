//! An independent model of what mapping should return, written from libpmem2's documented
//! behaviour (the project's libpmem2 reference, `shared/reference/libpmem2.md`: §1.3–1.4 for
//! the setters and sources, §3.4 for the order of `pmem2_map_new`'s checks, §3.6–3.7 for mmap
//! and granularity) and the deliberate differences in pmem2's README and crate docs (an
//! offset equal to the file size with length 0 is `PMEM2_E_MAP_RANGE`; a source whose fd was
//! closed or reused is `PMEM2_E_INVALID_FILE_HANDLE`; the seed form defaults to PAGE and the
//! fd's access mode).
//!
//! It shares no code with the crate: inputs are raw numbers as a C caller would pass them,
//! and facts about the machine (MAP_SYNC, `noexec`, eADR) come from the kernel through
//! `libc`, not from pmem2. The property tests (`tests/prop_validation.rs`) and the fuzz
//! target `validation` compare the crate with it.

use pmem2::ErrorKind;
use std::os::fd::RawFd;

/// `PMEM2_PROT_EXEC | PMEM2_PROT_READ | PMEM2_PROT_WRITE`.
pub const PROT_EXEC: u32 = 1 << 29;
/// `PMEM2_PROT_READ`.
pub const PROT_READ: u32 = 1 << 30;
/// `PMEM2_PROT_WRITE`.
pub const PROT_WRITE: u32 = 1 << 31;
const PROT_VALID: u32 = PROT_EXEC | PROT_READ | PROT_WRITE;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Which entry point maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `pmem2_map_new` (`Mapping::new`).
    Modern,
    /// API 1.0 `pmem2_map(config)` with the fd in the config (`pmem2::map`).
    Seed,
}

/// How the fd of a file source was opened, or what happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    WriteOnly,
    /// The number is not an open fd when the source is made.
    Closed,
    /// Open when the source is made, closed before mapping.
    ClosedAfterSource,
    /// Seed form only: `set_fd` never called.
    NotSet,
}

/// What is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceSpec {
    Anon { size: u64 },
    File { size: u64, access: Access },
}

/// Everything a caller passes, raw: `None` means the setter is not called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub form: Form,
    pub source: SourceSpec,
    pub granularity: Option<i64>,
    pub offset: u64,
    pub length: u64,
    pub sharing: Option<i64>,
    pub protection: Option<u32>,
}

/// Facts about the machine and the file, read from the kernel by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub page: u64,
    /// Whether `mmap(MAP_SHARED_VALIDATE | MAP_SYNC)` of the file succeeds (a DAX file).
    pub file_map_sync: bool,
    /// Whether the file's filesystem is mounted `noexec`.
    pub file_noexec: bool,
    /// Whether every nd region's persistence domain is `cpu_cache`.
    pub eadr: bool,
    /// `PMEM2_FORCE_GRANULARITY` as parsed by libpmem2.
    pub forced: Option<u32>,
}

/// A successful mapping as the model predicts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// `pmem2_map_get_size`.
    pub size: u64,
    /// The effective granularity, 0 BYTE, 1 CACHE_LINE, 2 PAGE.
    pub granularity: u32,
    /// libpmem2 protection bits the mapping was made with.
    pub protection: u32,
    /// 0 shared, 1 private.
    pub sharing: i64,
    /// Where the file range starts (0 for anonymous sources).
    pub file_offset: u64,
    /// The alignment the address must have.
    pub address_alignment: u64,
    pub anonymous: bool,
}

impl Expected {
    /// The `/proc/self/maps` permission string of the mapping, e.g. `rw-s`.
    pub fn maps_perms(&self) -> String {
        let bit = |mask: u32, c: char| if self.protection & mask != 0 { c } else { '-' };
        format!(
            "{}{}{}{}",
            bit(PROT_READ, 'r'),
            bit(PROT_WRITE, 'w'),
            bit(PROT_EXEC, 'x'),
            if self.sharing == 0 { 's' } else { 'p' }
        )
    }

    /// The page-rounded length the mapping occupies.
    pub fn reserved(&self, page: u64) -> u64 {
        self.size.div_ceil(page) * page
    }
}

/// The model's answer: the error kind the caller must see, or the mapping it must get.
pub type Outcome = Result<Expected, ErrorKind>;

/// `PMEM2_FORCE_GRANULARITY` parsed as libpmem2.md §3.7 says: at most 10 characters,
/// case-insensitive `BYTE`, `CACHE_LINE`, `CACHELINE` or `PAGE`; anything else is ignored.
pub fn parse_forced(value: Option<&str>) -> Option<u32> {
    let value = value?;
    if value.len() > 10 {
        return None;
    }
    match value.to_ascii_uppercase().as_str() {
        "BYTE" => Some(0),
        "CACHE_LINE" | "CACHELINE" => Some(1),
        "PAGE" => Some(2),
        _ => None,
    }
}

/// The outcome of setting every config value, creating the source and mapping, in the order
/// a caller does it: setters (granularity, offset, length, sharing, protection), then the
/// source (modern form), then `pmem2_map_new`'s checks (§3.4).
pub fn predict(req: &Request, m: &Machine) -> Outcome {
    // Setters (§1.4).
    if let Some(g) = req.granularity {
        if !(0..=2).contains(&g) {
            return Err(ErrorKind::GranularityNotSupported);
        }
    }
    if req.offset > i64::MAX as u64 {
        return Err(ErrorKind::OffsetOutOfRange);
    }
    if let Some(s) = req.sharing {
        if s != 0 && s != 1 {
            return Err(ErrorKind::InvalidSharingValue);
        }
    }
    if let Some(p) = req.protection {
        if p & !PROT_VALID != 0 {
            return Err(ErrorKind::InvalidProtFlag);
        }
    }
    let sharing = req.sharing.unwrap_or(0);

    // The source (§1.3): negative, closed and write-only fds are invalid file handles. The
    // seed form looks at its fd when mapping, before anything else.
    let (size, access) = match req.source {
        SourceSpec::Anon { size } => (size, None),
        SourceSpec::File { size, access } => (size, Some(access)),
    };
    match (req.form, access) {
        (Form::Seed, Some(Access::NotSet)) | (Form::Seed, None) => return Err(ErrorKind::FileHandleNotSet),
        (Form::Modern, Some(Access::NotSet)) => unreachable!("the modern form always has a source"),
        (_, Some(Access::Closed | Access::WriteOnly)) => return Err(ErrorKind::InvalidFileHandle),
        _ => {}
    }

    // §3.4 step 1: granularity (the seed form means PAGE when it is not set).
    let required = match (req.granularity, req.form) {
        (Some(g), _) => g as u32,
        (None, Form::Seed) => 2,
        (None, Form::Modern) => return Err(ErrorKind::GranularityNotSet),
    };
    // Steps 2–3: alignment is the page for files and anonymous memory; the size needs the fd.
    if access == Some(Access::ClosedAfterSource) {
        return Err(ErrorKind::InvalidFileHandle);
    }
    // Step 4: the offset's alignment comes before the length, the range and emptiness.
    if !req.offset.is_multiple_of(m.page) {
        return Err(ErrorKind::OffsetUnaligned);
    }
    // Step 6: protection; the seed form follows the fd's access mode when unset.
    let protection = match (req.protection, req.form, access) {
        (Some(p), _, _) => p,
        (None, Form::Seed, Some(Access::ReadOnly)) => PROT_READ,
        (None, _, _) => PROT_READ | PROT_WRITE,
    };
    // Step 8: pmem2_config_validate_length.
    if size == 0 {
        return Err(ErrorKind::SourceEmpty);
    }
    if !req.length.is_multiple_of(m.page) {
        return Err(ErrorKind::LengthUnaligned);
    }
    let Some(end) = req.offset.checked_add(req.length) else {
        return Err(ErrorKind::MapRange);
    };
    if end > size {
        return Err(ErrorKind::MapRange);
    }
    // Step 9: anonymous sources ignore the offset for mapping (step 5).
    let anonymous = access.is_none();
    let file_offset = if anonymous { 0 } else { req.offset };
    let content = if req.length != 0 {
        req.length
    } else {
        size - file_offset
    };
    if content == 0 {
        // libpmem2 lets mmap fail with -EINVAL; pmem2 documents MAP_RANGE.
        return Err(ErrorKind::MapRange);
    }
    // Step 12: what the kernel's mmap says (mmap(2): EACCES for a shared writable mapping of
    // an fd not open for writing; EPERM for PROT_EXEC on a noexec mount).
    if !anonymous {
        let writes_to_file = sharing == 0 && protection & PROT_WRITE != 0;
        if writes_to_file && access == Some(Access::ReadOnly) {
            return Err(match req.form {
                Form::Modern => ErrorKind::NoAccess,
                Form::Seed => ErrorKind::Os(libc::EACCES),
            });
        }
        if protection & PROT_EXEC != 0 && m.file_noexec {
            return Err(ErrorKind::Os(libc::EPERM));
        }
    }
    // Step 13 / §3.7: anonymous and private mappings are BYTE before the override; then the
    // override; then MAP_SYNC and eADR.
    let available = if anonymous || sharing == 1 {
        0
    } else if let Some(forced) = m.forced {
        forced
    } else if !m.file_map_sync {
        2
    } else if m.eadr {
        0
    } else {
        1
    };
    if available > required {
        return Err(ErrorKind::GranularityNotSupported);
    }
    // §3.5: 2 MiB, or 1 GiB from 2 GiB on.
    let reserved = content.div_ceil(m.page) * m.page;
    let address_alignment = if reserved >= 2 * GIB { GIB } else { 2 * MIB };
    Ok(Expected {
        size: content,
        granularity: available,
        protection,
        sharing,
        file_offset,
        address_alignment,
        anonymous,
    })
}

/// Whether the kernel grants `MAP_SHARED_VALIDATE | MAP_SYNC` for `fd` (opened read-write):
/// a one-page probe mapping, unmapped at once.
pub fn probe_map_sync(fd: RawFd) -> bool {
    const MAP_SYNC: libc::c_int = 0x80000;
    // SAFETY: a fresh mapping at a kernel-chosen address; unmapped below if it succeeds.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED_VALIDATE | MAP_SYNC,
            fd,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: the probe mapping created just above.
    unsafe { libc::munmap(addr, 4096) };
    true
}

/// Whether the filesystem holding `path` is mounted `noexec` (statvfs).
pub fn is_noexec(path: &std::path::Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` a writable statvfs buffer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) }, 0, "statvfs");
    // SAFETY: statvfs succeeded and filled the buffer.
    unsafe { st.assume_init() }.f_flag & libc::ST_NOEXEC != 0
}

/// eADR as §3.7 describes it: at least one `*region*` entry in `/sys/bus/nd/devices`, and
/// every one has a `persistence_domain` of `cpu_cache`; no such directory means no eADR.
pub fn platform_eadr() -> bool {
    let root = std::env::var("PMEM2_SYSFS_ROOT").unwrap_or_else(|_| "/sys".into());
    let Ok(entries) = std::fs::read_dir(format!("{root}/bus/nd/devices")) else {
        return false;
    };
    let mut regions = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().contains("region") {
            continue;
        }
        let domain = std::fs::read_to_string(entry.path().join("persistence_domain")).unwrap_or_default();
        if domain != "cpu_cache\n" {
            return false;
        }
        regions += 1;
    }
    regions > 0
}

/// The machine facts for a file at `path` opened read-write as `fd`.
pub fn machine_for(path: &std::path::Path, fd: RawFd) -> Machine {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Machine {
        page,
        file_map_sync: probe_map_sync(fd),
        file_noexec: is_noexec(path),
        eadr: platform_eadr(),
        forced: parse_forced(std::env::var("PMEM2_FORCE_GRANULARITY").ok().as_deref()),
    }
}
