//! Arbitrary config and source parameters through `Mapping::new` and the seed form
//! `pmem2::map`, compared with the independent model in `crates/pmem2/tests/model`.
//!
//! Never a panic; the result kind is the model's; on success the size, address alignment,
//! granularity, protection and `/proc/self/maps` entries are the model's, and every access
//! (`checked_range`, `read`, `write`, `persist`, `flush`) at fuzzer-chosen ranges is refused
//! exactly when it leaves the mapping. After each input no mapping of the file and no new fd
//! is left; every 1000 inputs the number of `/proc/self/maps` lines and the bytes of
//! placeholder-shaped (private, read-only, anonymous) mappings must not have grown.
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::validation::{self, Access, Expected, Form, Machine, Request, SourceSpec, PROT_READ, PROT_WRITE};
use pmem2::{Config, ErrorKind, Granularity, Mapping, Protection, Sharing, Source};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

const MIB: u64 = 1 << 20;

struct State {
    _dir: tempfile::TempDir,
    path: PathBuf,
    machine: Machine,
    inputs: u64,
    /// `/proc/self/maps` lines and placeholder-shaped bytes at the first checkpoint.
    baseline: Option<(usize, usize)>,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.bin");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.set_len(4096).unwrap();
    let machine = validation::machine_for(&path, file.as_raw_fd());
    Mutex::new(State {
        _dir: dir,
        path,
        machine,
        inputs: 0,
        baseline: None,
    })
});

fn size(u: &mut Unstructured, page: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => 0,
        1 => u.int_in_range(1..=64u64)? * page,
        2 => u.int_in_range(0..=64u64)? * page + u.int_in_range(1..=page - 1)?,
        3 => u.int_in_range(1..=64u64)? * MIB,
        4 => u.int_in_range(1..=3 * page)?,
        _ => u64::from(u.arbitrary::<u32>()?),
    })
}

fn offset(u: &mut Unstructured, size: u64, page: u64) -> Result<u64> {
    let pages = size / page;
    Ok(match u.int_in_range(0..=7u8)? {
        0 => 0,
        1 => u.int_in_range(0..=pages)? * page,
        2 => u.int_in_range(pages + 1..=pages + 3)? * page,
        3 => size,
        4 => u.int_in_range(0..=pages)? * page + u.int_in_range(1..=page - 1)?,
        5 => i64::MAX as u64 & !(page - 1),
        6 => i64::MAX as u64 + u.int_in_range(1..=page)?,
        _ => u.arbitrary()?,
    })
}

fn length(u: &mut Unstructured, size: u64, offset: u64, page: u64) -> Result<u64> {
    let pages = size / page;
    let rest = size.saturating_sub(offset);
    Ok(match u.int_in_range(0..=7u8)? {
        0 => 0,
        1 => u.int_in_range(1..=pages + 1)? * page,
        2 => rest,
        3 => rest & !(page - 1),
        4 => (rest & !(page - 1)) + page,
        5 => u.int_in_range(0..=pages)? * page + u.int_in_range(1..=page - 1)?,
        6 => !(page - 1),
        _ => u.arbitrary()?,
    })
}

fn raw_choice<T: for<'a> arbitrary::Arbitrary<'a>>(
    u: &mut Unstructured,
    valid: std::ops::RangeInclusive<i64>,
    wrap: impl Fn(i64) -> T,
) -> Result<Option<T>> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => Some(wrap(u.int_in_range(valid)?)),
    })
}

fn request(u: &mut Unstructured, page: u64) -> Result<Request> {
    let form = if u.arbitrary()? { Form::Seed } else { Form::Modern };
    let access = match u.int_in_range(0..=12u8)? {
        0..=4 => Access::ReadWrite,
        5..=8 => Access::ReadOnly,
        9 => Access::WriteOnly,
        10 => Access::Closed,
        11 => Access::ClosedAfterSource,
        _ if form == Form::Seed => Access::NotSet,
        _ => Access::ReadWrite,
    };
    let source = if form == Form::Modern && u.ratio(1, 4)? {
        SourceSpec::Anon { size: size(u, page)? }
    } else {
        SourceSpec::File {
            size: size(u, page)?,
            access,
        }
    };
    let source_size = match source {
        SourceSpec::Anon { size } | SourceSpec::File { size, .. } => size,
    };
    let offset = offset(u, source_size, page)?;
    let length = length(u, source_size, offset, page)?;
    let granularity = raw_choice(u, 0..=2, |g| g)?;
    let sharing = raw_choice(u, 0..=1, |s| s)?;
    let protection = match u.int_in_range(0..=5u8)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => Some(u.int_in_range(0..=7u32)? << 29),
    };
    Ok(Request {
        form,
        source,
        granularity,
        offset,
        length,
        sharing,
        protection,
    })
}

/// Access ranges relative to the mapping's size.
fn probes(u: &mut Unstructured, size: usize) -> Result<Vec<(usize, usize)>> {
    let mut out = vec![(0, 0), (size, 0), (size - 1, 1), (size, 1), (0, size), (0, size + 1)];
    while out.len() < 24 && !u.is_empty() {
        let len = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(0..=64usize)?,
            1 => u.int_in_range(0..=4096usize)?,
            2 => size.saturating_sub(u.int_in_range(0..=64usize)?),
            _ => u.arbitrary()?,
        };
        let offset = match u.int_in_range(0..=3u8)? {
            0 => size.saturating_sub(len).saturating_add(u.int_in_range(0..=2usize)?),
            1 => u.int_in_range(0..=size)?,
            2 => usize::MAX - u.int_in_range(0..=len)?,
            _ => u.arbitrary()?,
        };
        out.push((offset, len));
    }
    Ok(out)
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A duplicate numbered 900 or above (fd numbers below stay as they were).
fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 900) };
    assert!(high >= 900, "fcntl: {}", std::io::Error::last_os_error());
    // SAFETY: `high` was just created and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(high) }
}

struct MapsLine {
    start: usize,
    end: usize,
    perms: String,
    offset: u64,
    inode: u64,
    path: String,
}

fn maps() -> Vec<MapsLine> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = f[0].split_once('-').unwrap();
            MapsLine {
                start: usize::from_str_radix(start, 16).unwrap(),
                end: usize::from_str_radix(end, 16).unwrap(),
                perms: f[1].to_owned(),
                offset: u64::from_str_radix(f[2], 16).unwrap(),
                inode: f[4].parse().unwrap(),
                path: f.get(5..).map(|p| p.join(" ")).unwrap_or_default(),
            }
        })
        .collect()
}

fn build_config(req: &Request) -> std::result::Result<Config, ErrorKind> {
    let mut config = Config::new();
    if let Some(g) = req.granularity {
        config.set_required_store_granularity(Granularity::try_from(g).map_err(|e| e.kind())?);
    }
    config.set_offset(req.offset).map_err(|e| e.kind())?;
    config.set_length(req.length);
    if let Some(s) = req.sharing {
        config.set_sharing(Sharing::try_from(s).map_err(|e| e.kind())?);
    }
    if let Some(p) = req.protection {
        config.set_protection(Protection::from_raw(p).map_err(|e| e.kind())?);
    }
    Ok(config)
}

fn map(req: &Request, state: &State) -> std::result::Result<Mapping, ErrorKind> {
    let config = build_config(req)?;
    let (size, access) = match req.source {
        SourceSpec::Anon { size } => {
            return Mapping::new(&config, &Source::from_anon(size as usize)).map_err(|e| e.kind())
        }
        SourceSpec::File { size, access } => (size, access),
    };
    let file = OpenOptions::new().read(true).write(true).open(&state.path).unwrap();
    file.set_len(0).unwrap();
    file.set_len(size).unwrap();
    let opened = match access {
        Access::ReadOnly => Some(File::open(&state.path).unwrap()),
        Access::WriteOnly => Some(OpenOptions::new().write(true).open(&state.path).unwrap()),
        _ => None,
    };
    let fd = match access {
        Access::ReadWrite | Access::ClosedAfterSource => file.as_raw_fd(),
        Access::ReadOnly | Access::WriteOnly => opened.as_ref().unwrap().as_raw_fd(),
        Access::Closed => dup_high(file.as_raw_fd()).as_raw_fd(), // closed at the end of the statement
        Access::NotSet => -1,
    };
    let result = match (req.form, access) {
        (Form::Modern, Access::ClosedAfterSource) => {
            let high = dup_high(fd);
            let source = Source::from_raw_fd(high.as_raw_fd());
            drop(high);
            source.and_then(|source| Mapping::new(&config, &source))
        }
        (Form::Modern, _) => Source::from_raw_fd(fd).and_then(|source| Mapping::new(&config, &source)),
        (Form::Seed, Access::NotSet) => pmem2::map(&config),
        (Form::Seed, Access::ClosedAfterSource) => {
            let high = dup_high(fd);
            let mut config = config.clone();
            config.set_fd(high.as_raw_fd());
            drop(high);
            pmem2::map(&config)
        }
        (Form::Seed, _) => {
            let mut config = config.clone();
            config.set_fd(fd);
            pmem2::map(&config)
        }
    };
    result.map_err(|e| e.kind())
}

fn check_success(map: &Mapping, exp: &Expected, inode: Option<u64>, page: u64, u: &mut Unstructured) {
    assert_eq!(map.size() as u64, exp.size, "size");
    assert_eq!(
        map.address() as u64 % exp.address_alignment,
        0,
        "address {:p}",
        map.address()
    );
    assert_eq!(map.store_granularity() as u32, exp.granularity, "granularity");
    assert_eq!(map.protection().bits(), exp.protection, "protection");
    assert_eq!(map.sharing() as i64, exp.sharing, "sharing");
    let addr = map.address() as usize;
    let reserved = exp.reserved(page) as usize;
    let mut covered = addr;
    for e in maps().into_iter().filter(|e| e.start < addr + reserved && e.end > addr) {
        assert!(e.start <= covered, "hole in the mapping at {covered:#x}");
        covered = covered.max(e.end);
        assert_eq!(e.perms, exp.maps_perms(), "permissions");
        if let Some(inode) = inode {
            assert_eq!(e.inode, inode, "file");
            let at = addr.max(e.start);
            assert_eq!(
                e.offset + (at - e.start) as u64,
                exp.file_offset + (at - addr) as u64,
                "file offset"
            );
        }
    }
    assert!(
        covered >= addr + reserved,
        "the mapping is not fully in /proc/self/maps"
    );
    let size = map.size();
    for (offset, len) in probes(u, size).unwrap_or_default() {
        let inside = offset.checked_add(len).is_some_and(|end| end <= size);
        let range = if inside {
            Ok(())
        } else {
            Err(ErrorKind::LengthOutOfRange)
        };
        let access = |needs: u32| {
            if exp.protection & needs != needs {
                Err(ErrorKind::NoAccess)
            } else {
                range
            }
        };
        assert_eq!(
            map.checked_range(offset, len).is_ok(),
            inside,
            "checked_range({offset}, {len})"
        );
        assert_eq!(
            map.persist(offset, len).map_err(|e| e.kind()),
            range,
            "persist({offset}, {len})"
        );
        assert_eq!(
            map.flush(offset, len).map_err(|e| e.kind()),
            range,
            "flush({offset}, {len})"
        );
        if len <= 4096 {
            let mut buf = vec![0x5Au8; len];
            assert_eq!(
                map.read(offset, &mut buf).map_err(|e| e.kind()),
                access(PROT_READ),
                "read({offset}, {len})"
            );
            assert_eq!(
                map.write(offset, &buf).map_err(|e| e.kind()),
                access(PROT_WRITE),
                "write({offset}, {len})"
            );
        }
    }
}

fn checkpoint(state: &mut State) {
    let all = maps();
    let lines = all.len();
    let placeholder_bytes: usize = all
        .iter()
        .filter(|e| e.perms == "r--p" && e.inode == 0 && e.path.is_empty())
        .map(|e| e.end - e.start)
        .sum();
    match state.baseline {
        None => state.baseline = Some((lines, placeholder_bytes)),
        Some((base_lines, base_bytes)) => {
            assert!(
                lines <= base_lines + 256,
                "/proc/self/maps grew from {base_lines} to {lines} lines"
            );
            assert!(
                placeholder_bytes <= base_bytes + 64 * MIB as usize,
                "read-only anonymous mappings grew from {base_bytes} to {placeholder_bytes} bytes"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut state = STATE.lock().unwrap();
    let mut u = Unstructured::new(data);
    let Ok(req) = request(&mut u, state.machine.page) else {
        return;
    };
    let fds = open_fd_count();
    let expected = validation::predict(&req, &state.machine);
    let actual = map(&req, &state);
    let inode = match req.source {
        SourceSpec::File { .. } => Some(std::fs::metadata(&state.path).unwrap().ino()),
        SourceSpec::Anon { .. } => None,
    };
    match (actual, expected) {
        (Ok(map), Ok(exp)) => {
            check_success(&map, &exp, inode, state.machine.page, &mut u);
            map.unmap().unwrap();
        }
        (Err(actual), Err(expected)) => assert_eq!(actual, expected, "{req:?}"),
        (Ok(map), Err(expected)) => panic!("{req:?}: mapped {} bytes, the model expected {expected:?}", map.size()),
        (Err(actual), Ok(exp)) => panic!("{req:?}: failed with {actual:?}, the model expected {exp:?}"),
    }
    if let Some(inode) = inode {
        let left: Vec<_> = maps()
            .into_iter()
            .filter(|e| e.inode == inode)
            .map(|e| e.start)
            .collect();
        assert!(left.is_empty(), "{req:?}: mappings of the file left at {left:x?}");
    }
    assert_eq!(open_fd_count(), fds, "{req:?}: file descriptors leaked");
    state.inputs += 1;
    if state.inputs.is_multiple_of(1000) {
        checkpoint(&mut state);
    }
});
