//! Differential conformance: every scenario runs through pmem2 (in this process) and through
//! the system's libpmem2 (`conformance/oracle.c`, compiled here), and both must report the same
//! return codes, source size and alignment, mapping size and store granularity.
//!
//! The scenario line format is documented in `conformance/oracle.c`. Each side opens its own
//! fds from the same description, so no fd crosses the process boundary.
//!
//! `PMEM2_CONFORMANCE_VERBOSE=1 cargo test --test conformance -- --nocapture` prints every
//! scenario with libpmem2's answer.
//!
//! One test runs every scenario sequentially: it sets `PMEM2_FORCE_GRANULARITY` in-process
//! between rounds, so no other test of this binary may map files at the same time.
//!
//! On the real-DAX tier (`scripts/dax-guest`) `TMPDIR` is on an fsdax filesystem, so the file
//! scenarios map real DAX files; `PMEM2_TEST_DEVDAX=/dev/daxX.Y` adds device DAX scenarios, and
//! `PMEM2_TEST_REAL_DAX` names the granularity the unforced round must really get.

mod common;

use common::{holey_file, mkfifo, open, unix_socket, AppendOnly, GIB, KIB, MIB};
use pmem2::{Config, Granularity, Mapping, Sharing, Source, FORCE_GRANULARITY_ENV};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PAGE: u64 = 4096;
const I64_MAX: u64 = i64::MAX as u64;

#[derive(Debug, Clone)]
enum Src {
    Anon(u64),
    Fd { mode: &'static str, path: PathBuf },
}

#[derive(Debug, Clone)]
struct Scenario {
    id: String,
    source: Src,
    offset: u64,
    length: u64,
    granularity: Option<Granularity>,
    sharing: Sharing,
    prot: &'static str,
}

impl Scenario {
    fn line(&self) -> String {
        let source = match &self.source {
            Src::Anon(size) => format!("anon:{size}"),
            Src::Fd { mode, path } => format!("fd:{mode}:{}", path.display()),
        };
        let sharing = match self.sharing {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
        };
        format!(
            "{} {source} {} {} {} {sharing} {}",
            self.id,
            self.offset,
            self.length,
            self.granularity.map_or("unset", gran_name),
            self.prot
        )
    }

    /// Offset == file size with length 0: libpmem2 passes the empty range to mmap, which
    /// rejects it (-EINVAL, or -EBADF first for an O_PATH fd); pmem2 reports MAP_RANGE.
    /// Returns libpmem2's code for such a scenario.
    fn documented_difference(&self, source_size: Option<u64>) -> Option<i32> {
        match &self.source {
            Src::Fd { mode, .. } if self.length == 0 && Some(self.offset) == source_size => {
                Some(if *mode == "path" { -libc::EBADF } else { -libc::EINVAL })
            }
            _ => None,
        }
    }
}

fn gran_name(g: Granularity) -> &'static str {
    match g {
        Granularity::Byte => "byte",
        Granularity::CacheLine => "cache_line",
        Granularity::Page => "page",
    }
}

fn protection(letters: &str) -> pmem2::Protection {
    use pmem2::Protection;
    let mut bits = 0u32;
    for c in letters.chars().filter(|_| letters != "none") {
        bits |= match c {
            'r' => Protection::READ.bits(),
            'w' => Protection::WRITE.bits(),
            'x' => Protection::EXEC.bits(),
            _ => panic!("bad protection {letters}"),
        };
    }
    Protection::from_raw(bits).unwrap()
}

fn code<T>(r: &pmem2::Result<T>) -> i32 {
    r.as_ref().err().map_or(0, |e| e.code())
}

/// Opens the fd a scenario describes, as the oracle does. `Err` is the negative errno of open.
fn open_fd(mode: &str, path: &Path) -> Result<(RawFd, Option<OwnedFd>), i32> {
    let flags = match mode {
        "rdwr" | "closed" | "closed_after" => libc::O_RDWR,
        "rdonly" => libc::O_RDONLY,
        "wronly" => libc::O_WRONLY,
        "append" => libc::O_RDWR | libc::O_APPEND,
        "nonblock" => libc::O_RDONLY | libc::O_NONBLOCK,
        "path" => libc::O_PATH,
        "socket" => {
            let fd = unix_socket();
            return Ok((fd.as_raw_fd(), Some(fd)));
        }
        "neg" => return Ok((-1, None)),
        _ => panic!("unknown mode {mode}"),
    };
    let mut fd = open(path, flags).map_err(|e| -e.raw_os_error().unwrap())?;
    if mode.starts_with("closed") {
        // A number far above the others, so no fd another test thread opens (a pipe to the
        // oracle) can take it while it is closed.
        fd = common::dup_high(&fd);
    }
    let raw = fd.as_raw_fd();
    if mode == "closed" {
        drop(fd);
        return Ok((raw, None));
    }
    Ok((raw, Some(fd)))
}

/// The fields from `map=` on of a scenario that did not map.
const NOT_MAPPED: &str = "map=- msize=- gran=- addr=- maps=- sync=- persist=-";

/// The alignment class of a mapping's address, as the oracle prints it: "1g" only for
/// mappings of 2 GiB or more, the only ones promised it (below that it is luck, on either side).
fn addr_class(addr: usize, size: usize) -> &'static str {
    if addr.is_multiple_of(GIB as usize) && size >= 2 * GIB as usize {
        "1g"
    } else if addr.is_multiple_of(2 * MIB as usize) {
        "2m"
    } else if addr.is_multiple_of(pmem2::page_size()) {
        "page"
    } else {
        "none"
    }
}

/// The permissions `/proc/self/maps` shows over `[start, end)`: one entry's, several joined
/// with ',' (repeats dropped), or "gap" where the range is not all mapped.
fn maps_perms(start: usize, end: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut covered = start;
    let mut gap = false;
    for e in common::maps_in(start as *const u8, end - start) {
        gap |= e.start > covered;
        covered = e.end;
        if out.last() != Some(&e.perms) {
            out.push(e.perms);
        }
    }
    if gap || covered < end || out.is_empty() {
        "gap".into()
    } else {
        out.join(",")
    }
}

/// Whether the `/proc/self/smaps` entry starting at `start` has VmFlags `sf` (MAP_SYNC).
fn smaps_sync(start: usize) -> bool {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let head = line.split(' ').next().unwrap_or("");
        if let Some((lo, _)) = head
            .split_once('-')
            .filter(|(lo, _)| usize::from_str_radix(lo, 16).is_ok())
        {
            inside = usize::from_str_radix(lo, 16) == Ok(start);
        } else if inside && line.starts_with("VmFlags:") {
            return line.split_whitespace().any(|flag| flag == "sf");
        }
    }
    false
}

/// What a successful mapping is as the kernel shows it, in the oracle's format: the address
/// class, the permissions in /proc/self/maps, MAP_SYNC (the API's answer, which must match
/// smaps), and the msyncs the persist function makes for the oracle's probe range, from the
/// event log of the `path-counters` feature.
fn observed(map: &Mapping, prot: pmem2::Protection) -> String {
    use pmem2::mem::counters::{self, Event};
    let (addr, size) = (map.address() as usize, map.size());
    let sync = match (map.map_sync(), smaps_sync(addr)) {
        (api, kernel) if api == kernel => u8::from(api).to_string(),
        (api, kernel) => format!("api:{api}/smaps:{kernel}"),
    };
    let readable = prot.intersects(pmem2::Protection::READ | pmem2::Protection::WRITE);
    let persist = if map.store_granularity() != Granularity::Page && !readable {
        "-".to_owned()
    } else {
        let p = size.min(101) - 1;
        let l = (size - p).min(5000);
        let persist = map.persist_fn();
        counters::record();
        // SAFETY: [addr + p, addr + p + l) lies inside the live mapping.
        unsafe { persist(map.address().add(p), l) }.unwrap();
        let msyncs: Vec<String> = counters::take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Msync { addr: a, len, flags } => Some(format!("msync:{}+{len}:{flags}", a - addr)),
                _ => None,
            })
            .collect();
        if msyncs.is_empty() {
            "none".to_owned()
        } else {
            msyncs.join(",")
        }
    };
    format!(
        "addr={} maps={} sync={sync} persist={persist}",
        addr_class(addr, size),
        maps_perms(addr, addr + size)
    )
}

/// Runs one scenario through pmem2 and formats the result as the oracle does.
fn run_pmem2(s: &Scenario) -> String {
    let mut keep_open = None;
    let source = match &s.source {
        Src::Anon(size) => Ok(Source::from_anon(*size as usize)),
        Src::Fd { mode, path } => {
            let (raw, owned) = match open_fd(mode, path) {
                Ok(fd) => fd,
                Err(errno) => return format!("{} src=open:{errno} size=- align=- off=- {NOT_MAPPED}", s.id),
            };
            let source = Source::from_raw_fd(raw);
            if *mode == "closed_after" {
                drop(owned);
            } else {
                keep_open = owned;
            }
            source
        }
    };
    let source = match source {
        Ok(source) => source,
        Err(e) => {
            return format!("{} src={} size=- align=- off=- {NOT_MAPPED}", s.id, e.code());
        }
    };
    let size = match source.size() {
        Ok(v) => format!("0:{v}"),
        Err(e) => format!("{}:-", e.code()),
    };
    let align = match source.alignment() {
        Ok(v) => format!("0:{v}"),
        Err(e) => format!("{}:-", e.code()),
    };
    let mut config = Config::new();
    let off = code(&config.set_offset(s.offset).map(|_| ()));
    config.set_length(s.length);
    if let Some(g) = s.granularity {
        config.set_required_store_granularity(g);
    }
    config.set_sharing(s.sharing);
    config.set_protection(protection(s.prot));
    let mapped = Mapping::new(&config, &source);
    let result = match &mapped {
        Ok(map) => format!(
            "map=0 msize={} gran={} {}",
            map.size(),
            gran_name(map.store_granularity()),
            observed(map, protection(s.prot))
        ),
        Err(e) => format!("map={} {}", e.code(), &NOT_MAPPED[6..]),
    };
    drop(mapped);
    drop(keep_open);
    format!("{} src=0 size={size} align={align} off={off} {result}", s.id)
}

/// The oracle program: the one already built at `PMEM2_TEST_ORACLE` (the real-DAX tier builds
/// it on the host, since its guests would spend long in gcc and must not write into the work
/// tree), or compiled here once per test process; `None` (after one visible line, or a failure
/// under CI) when this machine lacks gcc, pkg-config or Debian's libpmem2-dev.
fn build_oracle(test: &str) -> Option<PathBuf> {
    static ORACLE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let oracle = ORACLE.get_or_init(|| match std::env::var_os("PMEM2_TEST_ORACLE") {
        Some(path) => Ok(PathBuf::from(path)),
        None => compile_oracle(),
    });
    match oracle {
        Ok(path) => Some(path.clone()),
        Err(missing) => {
            common::prerequisite(test, false, missing);
            None
        }
    }
}

fn compile_oracle() -> Result<PathBuf, String> {
    const INSTALL: &str = "apt-get install gcc pkg-config libpmem2-dev";
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/oracle.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pmem2-oracle");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libpmem2"])
        .output()
        .map_err(|e| format!("cannot run pkg-config ({e}): {INSTALL}"))?;
    if !flags.status.success() {
        return Err(format!(
            "pkg-config does not know libpmem2 (the reference implementation): {INSTALL}"
        ));
    }
    let flags = String::from_utf8(flags.stdout).unwrap();
    // Compiled under a name of this process and renamed into place: test runners that run
    // each test in its own process (nextest) compile it at the same time as others execute
    // it, and exec of a file open for writing fails with ETXTBSY.
    let partial = out.with_extension(format!("{}.partial", std::process::id()));
    let gcc = Command::new("gcc")
        // -rdynamic: libpmem2's msync calls bind to the oracle's own msync, which records them.
        .args(["-O1", "-Wall", "-Wextra", "-Werror", "-rdynamic"])
        .arg(&src)
        .arg("-o")
        .arg(&partial)
        .args(flags.split_whitespace())
        .output()
        .map_err(|e| format!("cannot run gcc ({e}): {INSTALL}"))?;
    // A compile error with every tool present is a bug in the oracle, not a missing prerequisite.
    assert!(
        gcc.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&gcc.stderr)
    );
    std::fs::rename(&partial, &out).unwrap();
    Ok(out)
}

/// Runs all scenarios through the oracle with `PMEM2_FORCE_GRANULARITY` = `force`.
fn run_oracle(oracle: &Path, scenarios: &[Scenario], force: Option<&str>) -> HashMap<String, String> {
    let mut cmd = Command::new(oracle);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    match force {
        Some(v) => cmd.env(FORCE_GRANULARITY_ENV, v),
        None => cmd.env_remove(FORCE_GRANULARITY_ENV),
    };
    cmd.env_remove(pmem2::SYSFS_ROOT_ENV);
    let mut child = cmd.spawn().unwrap();
    let input: String = scenarios.iter().map(|s| s.line() + "\n").collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: HashMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| (l.split(' ').next().unwrap().to_owned(), l.to_owned()))
        .collect();
    assert_eq!(lines.len(), scenarios.len(), "oracle answered every scenario once");
    lines
}

/// The fixtures every scenario refers to, in one temporary directory.
struct Fixtures {
    dir: tempfile::TempDir,
    files: Vec<(u64, PathBuf)>,
    big: PathBuf,
    /// 2 GiB, sparse: mappings of 2 GiB and more are placed at 1 GiB.
    huge: PathBuf,
    fifo: PathBuf,
    append_only: Option<AppendOnly>,
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, 3 * KIB, 5000, MIB, 16 * MIB - 1, 16 * MIB];
    let files: Vec<_> = sizes
        .iter()
        .map(|&size| (size, holey_file(dir.path(), &format!("file{size}"), size)))
        .collect();
    let big = files.last().unwrap().1.clone();
    let huge = holey_file(dir.path(), "file2g", 2 * GIB);
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let append_path = holey_file(dir.path(), "append-only", 16 * MIB);
    let append_only = common::append_only_for("conformance (append-only scenarios)", &append_path);
    Fixtures {
        dir,
        files,
        big,
        huge,
        fifo,
        append_only,
    }
}

const GRANULARITIES: [Option<Granularity>; 4] = [
    Some(Granularity::Byte),
    Some(Granularity::CacheLine),
    Some(Granularity::Page),
    None,
];
const SHARINGS: [Sharing; 2] = [Sharing::Shared, Sharing::Private];

fn scenario(id: String, source: Src, offset: u64, length: u64, granularity: Option<Granularity>) -> Scenario {
    Scenario {
        id,
        source,
        offset,
        length,
        granularity,
        sharing: Sharing::Shared,
        prot: "rw",
    }
}

fn fd(mode: &'static str, path: &Path) -> Src {
    Src::Fd {
        mode,
        path: path.to_owned(),
    }
}

/// Offsets and lengths around page and file boundaries and the integer extremes.
fn boundaries(size: u64) -> (Vec<u64>, Vec<u64>) {
    let mut offsets = vec![0, 1, 1024, 4095, PAGE, PAGE + 1, size, size + PAGE, 2 * size];
    offsets.extend(size.checked_sub(PAGE));
    offsets.extend([I64_MAX & !(PAGE - 1), I64_MAX, I64_MAX + 1, u64::MAX]);
    let half = (size / 2) & !(PAGE - 1);
    let mut lengths = vec![
        0,
        1024,
        3 * KIB,
        PAGE,
        PAGE + 1,
        half,
        size,
        size.next_multiple_of(PAGE),
    ];
    lengths.extend([size + PAGE, u64::MAX - (PAGE - 1), u64::MAX]);
    for v in [&mut offsets, &mut lengths] {
        v.sort_unstable();
        v.dedup();
    }
    (offsets, lengths)
}

fn all_scenarios(fx: &Fixtures) -> Vec<Scenario> {
    let mut out = Vec::new();
    let dir = fx.dir.path();
    // Every kind of fd, every granularity, both sharings, on a 16 MiB holey file.
    let mut kinds = vec![
        ("rdwr", fd("rdwr", &fx.big)),
        ("rdonly", fd("rdonly", &fx.big)),
        ("wronly", fd("wronly", &fx.big)),
        ("neg", fd("neg", &fx.big)),
        ("closed", fd("closed", &fx.big)),
        ("closed-after-source", fd("closed_after", &fx.big)),
        ("opath", fd("path", &fx.big)),
        ("dir", fd("rdonly", dir)),
        ("fifo", fd("nonblock", &fx.fifo)),
        ("socket", fd("socket", &fx.big)),
        ("devnull", fd("rdwr", Path::new("/dev/null"))),
        ("devzero", fd("rdonly", Path::new("/dev/zero"))),
    ];
    if let Some(a) = &fx.append_only {
        kinds.push(("append-only-rdwr-append", fd("append", &a.path)));
        kinds.push(("append-only-rdonly", fd("rdonly", &a.path)));
        kinds.push(("append-only-rdwr", fd("rdwr", &a.path)));
    }
    for (name, src) in &kinds {
        for g in GRANULARITIES {
            for sharing in SHARINGS {
                for prot in ["rw", "r"] {
                    // Offset 0 maps the whole file; offset 16 MiB (the size) leaves nothing.
                    for offset in [0, 16 * MIB] {
                        let id = format!("kind-{name}-{g:?}-{sharing:?}-{prot}-off{offset}");
                        let mut s = scenario(id, src.clone(), offset, 0, g);
                        s.sharing = sharing;
                        s.prot = prot;
                        out.push(s);
                    }
                }
            }
        }
    }
    // Offsets and lengths around page and file boundaries, for every file size.
    for (size, path) in &fx.files {
        let (offsets, lengths) = boundaries(*size);
        for &offset in &offsets {
            for &length in &lengths {
                let id = format!("range-{size}-off{offset}-len{length}");
                out.push(scenario(id, fd("rdwr", path), offset, length, Some(Granularity::Page)));
            }
        }
    }
    // The same boundaries with a read-only fd mapped privately, asking for BYTE.
    let (offsets, lengths) = boundaries(16 * MIB);
    for &offset in &offsets {
        for &length in &lengths {
            let mut s = scenario(
                format!("range-private-rdonly-off{offset}-len{length}"),
                fd("rdonly", &fx.big),
                offset,
                length,
                Some(Granularity::Byte),
            );
            s.sharing = Sharing::Private;
            out.push(s);
        }
    }
    // Every protection against read-write, read-only and append-only fds.
    let mut prot_fds = vec![("rdwr", fd("rdwr", &fx.big)), ("rdonly", fd("rdonly", &fx.big))];
    if let Some(a) = &fx.append_only {
        prot_fds.push(("append", fd("append", &a.path)));
    }
    for (name, src) in &prot_fds {
        for prot in ["none", "r", "w", "x", "rw", "rx", "wx", "rwx"] {
            for sharing in SHARINGS {
                for g in [Granularity::Page, Granularity::Byte] {
                    let mut s = scenario(
                        format!("prot-{name}-{prot}-{sharing:?}-{g:?}"),
                        src.clone(),
                        0,
                        0,
                        Some(g),
                    );
                    s.sharing = sharing;
                    s.prot = prot;
                    out.push(s);
                }
            }
        }
    }
    // Anonymous sources: sizes, offset tricks, lengths.
    for size in [0, PAGE, MIB, GIB] {
        for offset in [0, 1, PAGE, MIB, size, size + PAGE] {
            for length in [0, 1024, PAGE, MIB] {
                for sharing in SHARINGS {
                    let id = format!("anon-{size}-off{offset}-len{length}-{sharing:?}");
                    let mut s = scenario(id, Src::Anon(size), offset, length, Some(Granularity::Page));
                    s.sharing = sharing;
                    out.push(s);
                }
            }
        }
        for g in GRANULARITIES {
            out.push(scenario(format!("anon-{size}-gran-{g:?}"), Src::Anon(size), 0, 0, g));
        }
    }
    out.extend(mapping_scenarios(fx));
    if let Some(dev) = std::env::var_os(DEVDAX_ENV) {
        out.extend(devdax_scenarios(Path::new(&dev)));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.id.clone()));
    out
}

/// A device DAX to add scenarios for (the real-DAX tier).
const DEVDAX_ENV: &str = "PMEM2_TEST_DEVDAX";

/// A number in the device's sysfs directory (`/sys/bus/dax/devices/daxX.Y/NAME`).
fn devdax_sysfs(dev: &Path, name: &str) -> u64 {
    let path = Path::new("/sys/bus/dax/devices")
        .join(dev.file_name().unwrap())
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text:?}", path.display()))
}

/// Device DAX, with its size and alignment from its sysfs directory (not from pmem2): offsets
/// and lengths around the alignment and the end, one pair per outcome of the checks; and the
/// fd kinds, granularities, sharings (private is refused) and protections in a pairwise set
/// (every pair of values occurs once, so the relative order of any two checks is seen). Not
/// the full grids: libpmem2 walks the nd bus through libndctl, thousands of system calls, for
/// each scenario, which takes most of a second under TCG.
fn devdax_scenarios(dev: &Path) -> Vec<Scenario> {
    let size = devdax_sysfs(dev, "size");
    let align = devdax_sysfs(dev, "align");
    assert!(
        align.is_power_of_two() && size.is_multiple_of(align) && size >= 4 * align,
        "size {size}, align {align}"
    );
    let mut out = Vec::new();
    let ranges = [
        (0, 0),                // the whole device
        (0, size),             // the whole device, by length
        (0, PAGE),             // length unaligned
        (0, size + align),     // past the end
        (PAGE, align),         // offset unaligned
        (PAGE, PAGE),          // both unaligned
        (align, align),        // a window
        (align, align + PAGE), // length unaligned at an offset
        (align, size - align), // up to the end
        (align, size),         // one unit past the end
        (size - align, 0),     // the last unit, by length 0
        (size - align, align), // the last unit
        (size, 0),             // offset at the end, length 0
        (size, align),         // offset at the end
        (size + align, align), // offset past the end
        (!(align - 1), align), // offset + length overflows
        (!(align - 1), 0),     // the largest aligned offset, length 0
    ];
    for (offset, length) in ranges {
        let id = format!("devdax-off{offset}-len{length}");
        out.push(scenario(id, fd("rdwr", dev), offset, length, Some(Granularity::Page)));
    }
    for (i, mode) in ["rdwr", "rdonly", "wronly", "closed_after"].into_iter().enumerate() {
        for (j, g) in GRANULARITIES.into_iter().enumerate() {
            let sharing = SHARINGS[(i + j) % 2];
            let prot = ["rw", "r"][(j >> 1) ^ (i & 1)];
            let id = format!("devdax-{mode}-{g:?}-{sharing:?}-{prot}");
            let mut s = scenario(id, fd(mode, dev), align, align, g);
            s.sharing = sharing;
            s.prot = prot;
            out.push(s);
        }
    }
    out
}

const PROTECTIONS: [&str; 8] = ["none", "r", "w", "x", "rw", "rx", "wx", "rwx"];

/// Scenarios that map, to compare the mapping itself (address alignment, /proc/self/maps
/// permissions, MAP_SYNC, persist's msyncs): every required granularity × sharing ×
/// protection over a read-write fd at each offset class (the start, page aligned, 2 MiB
/// aligned, neither near the middle, 2 MiB before the end, the last page) with each length
/// class that fits (0 = to the end, a page, 5 pages, 2 MiB, 2 MiB and a page); a 2 GiB sparse
/// file, placed at 1 GiB; and anonymous sources of a page, 5 pages, 3 MiB and 2 GiB, whole and
/// their first page. (GRANULARITY_NOT_SET, which never maps, is covered by the scenarios above.)
fn mapping_scenarios(fx: &Fixtures) -> Vec<Scenario> {
    let mut out = Vec::new();
    let big = 16 * MIB;
    let offsets = [0, PAGE, 2 * MIB, 3 * MIB + 5 * PAGE, big - 2 * MIB, big - PAGE];
    let lengths = [0, PAGE, 5 * PAGE, 2 * MIB, 2 * MIB + PAGE];
    for g in GRANULARITIES.into_iter().flatten() {
        for sharing in SHARINGS {
            for prot in PROTECTIONS {
                for offset in offsets {
                    for length in lengths.into_iter().filter(|l| offset + l <= big) {
                        let id = format!("map-{g:?}-{sharing:?}-{prot}-off{offset}-len{length}");
                        let mut s = scenario(id, fd("rdwr", &fx.big), offset, length, Some(g));
                        s.sharing = sharing;
                        s.prot = prot;
                        out.push(s);
                    }
                }
                for size in [PAGE, 5 * PAGE, 3 * MIB, 2 * GIB] {
                    for length in [0, PAGE] {
                        let id = format!("map-anon{size}-len{length}-{g:?}-{sharing:?}-{prot}");
                        let mut s = scenario(id, Src::Anon(size), 0, length, Some(g));
                        s.sharing = sharing;
                        s.prot = prot;
                        out.push(s);
                    }
                }
            }
            for prot in ["r", "rw"] {
                let mut s = scenario(
                    format!("map-2g-{g:?}-{sharing:?}-{prot}"),
                    fd("rdwr", &fx.huge),
                    0,
                    0,
                    Some(g),
                );
                s.sharing = sharing;
                s.prot = prot;
                out.push(s);
            }
        }
    }
    out
}

/// The size of the source a scenario's line reports, if it got that far.
fn reported_size(line: &str) -> Option<u64> {
    let field = line.split(' ').find_map(|f| f.strip_prefix("size=0:"))?;
    field.parse().ok()
}

struct Round {
    agree: usize,
    /// Scenarios that libpmem2 mapped (so the mapping itself was compared).
    mapped: usize,
    /// libpmem2's code for offset == size, length 0 (pmem2: MAP_RANGE) -> count.
    documented: std::collections::BTreeMap<i32, usize>,
    mismatches: Vec<String>,
}

fn compare(oracle: &Path, scenarios: &[Scenario], force: Option<&str>) -> Round {
    match force {
        Some(v) => std::env::set_var(FORCE_GRANULARITY_ENV, v),
        None => std::env::remove_var(FORCE_GRANULARITY_ENV),
    }
    let expected = run_oracle(oracle, scenarios, force);
    let verbose = std::env::var_os("PMEM2_CONFORMANCE_VERBOSE").is_some();
    let mut round = Round {
        agree: 0,
        mapped: 0,
        documented: Default::default(),
        mismatches: Vec::new(),
    };
    for s in scenarios {
        let want = &expected[&s.id];
        round.mapped += usize::from(want.contains(" map=0 "));
        let got = run_pmem2(s);
        if verbose {
            println!("[{}] {}\n  => {want}", force.unwrap_or("-"), s.line());
        }
        if &got == want {
            round.agree += 1;
        } else if let Some(rc) = s
            .documented_difference(reported_size(want))
            .filter(|rc| got.replace(" map=-100006 ", &format!(" map={rc} ")) == *want)
        {
            *round.documented.entry(rc).or_default() += 1;
        } else {
            let diff = format!(
                "[{}] {}\n  libpmem2: {want}\n  pmem2:    {got}",
                force.unwrap_or("-"),
                s.line()
            );
            round.mismatches.push(diff);
        }
    }
    std::env::remove_var(FORCE_GRANULARITY_ENV);
    round
}

/// How many scenarios [`all_scenarios`] makes (per round), without the append-only ones.
const SCENARIOS_WITHOUT_APPEND_ONLY: usize = 3156;
/// The append-only scenarios: three fd kinds × 32, and every protection × sharing × 2
/// granularities over an append-only fd.
const APPEND_ONLY_SCENARIOS: usize = 3 * 32 + 32;
/// The device DAX scenarios when `PMEM2_TEST_DEVDAX` names one: 17 ranges and the pairwise
/// set of 4 fd kinds × the granularities.
const DEVDAX_SCENARIOS: usize = 17 + 4 * GRANULARITIES.len();

#[test]
fn pmem2_agrees_with_libpmem2_on_every_scenario() {
    let Some(oracle) = build_oracle("pmem2_agrees_with_libpmem2_on_every_scenario") else {
        return;
    };
    let fx = fixtures();
    let scenarios = all_scenarios(&fx);
    std::env::remove_var(pmem2::SYSFS_ROOT_ENV);
    let (mut total, mut agree, mut mapped) = (0, 0, 0);
    let mut documented = std::collections::BTreeMap::<i32, usize>::new();
    let mut mismatches = Vec::new();
    for force in [None, Some("CACHE_LINE"), Some("BYTE")] {
        // Device DAX scenarios run unforced only: libpmem2 walks the whole nd bus through
        // libndctl for each of them, which is slow in an emulator, and forcing adds nothing there.
        let round_scenarios: Vec<Scenario> = scenarios
            .iter()
            .filter(|s| force.is_none() || !s.id.starts_with("devdax-"))
            .cloned()
            .collect();
        let round = compare(&oracle, &round_scenarios, force);
        total += round_scenarios.len();
        agree += round.agree;
        mapped += round.mapped;
        for (rc, n) in round.documented {
            *documented.entry(rc).or_default() += n;
        }
        mismatches.extend(round.mismatches);
    }
    let documented_total: usize = documented.values().sum();
    let documented_text: Vec<_> = documented
        .iter()
        .map(|(rc, n)| format!("{n} where libpmem2 returns {rc}"))
        .collect();
    println!(
        "conformance: {total} scenario runs ({} scenarios, 3 PMEM2_FORCE_GRANULARITY settings), {agree} agree, \
         {documented_total} documented differences (offset == file size with length 0, pmem2 -100006: {}), \
         {} mismatches; {mapped} of them map ({:.0} %), comparing the address alignment, \
         /proc/self/maps permissions, MAP_SYNC and persist's msyncs too",
        scenarios.len(),
        documented_text.join(", "),
        mismatches.len(),
        100.0 * mapped as f64 / total as f64
    );
    // The exact number, so that scenarios lost to a missing capability cannot pass unnoticed
    // (the append-only ones need CAP_LINUX_IMMUTABLE; without it `fixtures` said so in one line,
    // and under CI failed).
    let append_only = if fx.append_only.is_some() {
        APPEND_ONLY_SCENARIOS
    } else {
        0
    };
    let devdax = scenarios.iter().filter(|s| s.id.starts_with("devdax-")).count();
    let want_devdax = if std::env::var_os(DEVDAX_ENV).is_some() {
        println!("conformance: {devdax} of the scenarios on device DAX (unforced round only)");
        DEVDAX_SCENARIOS
    } else {
        0
    };
    assert_eq!(
        (scenarios.len() - devdax, devdax),
        (SCENARIOS_WITHOUT_APPEND_ONLY + append_only, want_devdax),
        "the scenario count changed: update the constants"
    );
    // Half of them map here; a noexec TMPDIR refuses the PROT_EXEC half of the file grid on
    // both sides, which still leaves more than 30 %.
    assert!(
        mapped * 100 >= total * 30,
        "only {mapped} of {total} scenario runs map: the mapping itself is hardly compared"
    );
    assert!(
        documented.get(&-libc::EINVAL).copied().unwrap_or(0) > 0,
        "the documented difference never occurred"
    );
    assert!(
        mismatches.is_empty(),
        "pmem2 disagrees with libpmem2:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(agree + documented_total, total);
    if let Some(real) = common::real_dax() {
        // The unforced round really ran on DAX: a shared read-write file mapping got `real`.
        let id = "kind-rdwr-Some(Page)-Shared-rw-off0";
        let s = scenarios.iter().find(|s| s.id == id).unwrap();
        let got = run_pmem2(s);
        assert!(
            got.contains(&format!(" gran={} ", gran_name(real))) && got.contains(" sync=1 "),
            "not on real DAX: {got}"
        );
    }
}

/// libpmem2 maps an anonymous source from its start whatever the offset, and with length 0
/// maps all of it (`content = size - effective_offset`, the effective offset being 0).
#[test]
fn anonymous_length_zero_ignores_the_offset_like_libpmem2() {
    let Some(oracle) = build_oracle("anonymous_length_zero_ignores_the_offset_like_libpmem2") else {
        return;
    };
    let mut scenarios = Vec::new();
    for size in [PAGE, MIB, GIB] {
        let mut offsets = vec![PAGE, MIB, size];
        offsets.retain(|&o| o <= size);
        offsets.dedup();
        for offset in offsets {
            for sharing in SHARINGS {
                let id = format!("anon-{size}-off{offset}-{sharing:?}");
                let mut s = scenario(id, Src::Anon(size), offset, 0, Some(Granularity::Page));
                s.sharing = sharing;
                scenarios.push(s);
            }
        }
    }
    let expected = run_oracle(&oracle, &scenarios, None);
    let mismatches: Vec<_> = scenarios
        .iter()
        .filter_map(|s| {
            let got = run_pmem2(s);
            (got != expected[&s.id]).then(|| format!("libpmem2: {}\npmem2:    {got}", expected[&s.id]))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The numbers pmem2 uses are the numbers in Debian's libpmem2 headers, as the C compiler sees them.
#[test]
fn error_codes_and_constants_match_the_libpmem2_header() {
    use pmem2::{ErrorKind, Protection, ERROR_CODES};
    let Some(oracle) = build_oracle("error_codes_and_constants_match_the_libpmem2_header") else {
        return;
    };
    let out = Command::new(oracle).arg("--constants").output().unwrap();
    assert!(out.status.success());
    let header: HashMap<String, i64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect();
    let header_codes = header.keys().filter(|k| k.starts_with("PMEM2_E_")).count();
    assert_eq!(ERROR_CODES.len(), header_codes, "one ErrorKind per PMEM2_E_* code");
    for &(name, code) in ERROR_CODES {
        assert_eq!(header.get(name), Some(&(code as i64)), "{name}");
        let kind = ErrorKind::from_code(code).unwrap();
        assert_eq!((kind.name(), kind.code()), (name, code));
    }
    assert_eq!(header["PMEM2_PROT_EXEC"], Protection::EXEC.bits() as i64);
    assert_eq!(header["PMEM2_PROT_READ"], Protection::READ.bits() as i64);
    assert_eq!(header["PMEM2_PROT_WRITE"], Protection::WRITE.bits() as i64);
    assert_eq!(header["PMEM2_PROT_NONE"], Protection::NONE.bits() as i64);
    assert_eq!(header["PMEM2_GRANULARITY_BYTE"], Granularity::Byte as i64);
    assert_eq!(header["PMEM2_GRANULARITY_CACHE_LINE"], Granularity::CacheLine as i64);
    assert_eq!(header["PMEM2_GRANULARITY_PAGE"], Granularity::Page as i64);
    assert_eq!(header["PMEM2_SHARED"], Sharing::Shared as i64);
    assert_eq!(header["PMEM2_PRIVATE"], Sharing::Private as i64);
    for (value, g) in [
        (0, Granularity::Byte),
        (1, Granularity::CacheLine),
        (2, Granularity::Page),
    ] {
        assert_eq!(Granularity::try_from(value).unwrap(), g);
    }
    assert_eq!(Sharing::try_from(header["PMEM2_PRIVATE"]).unwrap(), Sharing::Private);
}
