//! Helpers shared by the integration tests: fixtures, fds, /proc/self/maps, child processes.
#![allow(dead_code, unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The page size as a u64, for offsets and lengths.
pub fn page() -> u64 {
    pmem2::page_size() as u64
}

/// A sparse file of `size` bytes (libpmem2's `create_holey_file`).
pub fn holey_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// A holey file of `size` bytes in a new temporary directory, opened read-write.
pub fn holey_tempfile(size: u64) -> File {
    let file = tempfile::tempfile().unwrap();
    file.set_len(size).unwrap();
    file
}

/// Opens `path` with raw `open(2)` flags.
pub fn open(path: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let access = flags & libc::O_ACCMODE;
    let mut opts = OpenOptions::new();
    opts.read(access == libc::O_RDONLY || access == libc::O_RDWR)
        .write(access == libc::O_WRONLY || access == libc::O_RDWR)
        .custom_flags(flags & !libc::O_ACCMODE);
    if flags & libc::O_PATH != 0 {
        // std insists on an access mode; O_PATH ignores it.
        opts.read(true);
    }
    Ok(opts.open(path)?.into())
}

/// A duplicate of `fd` with a number no other call in this process gets, now or later: 900
/// and above, one more each call. Descriptors are allocated lowest first, so no other
/// thread's open() takes such a number back while a test keeps it closed, and no other
/// test's `dup_high` does either (with one shared floor, a test that closed its descriptor
/// saw a parallel test's file appear under the same number).
pub fn dup_high(fd: &impl AsRawFd) -> OwnedFd {
    use std::sync::atomic::{AtomicI32, Ordering};
    static NEXT: AtomicI32 = AtomicI32::new(900);
    static RAISE_LIMIT: std::sync::Once = std::sync::Once::new();
    RAISE_LIMIT.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write `limit`; raising the soft limit
        // up to the hard one needs no privilege.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            limit.rlim_cur = limit.rlim_max.min(1 << 16);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    });
    let floor = NEXT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    assert!(
        high >= floor,
        "fcntl F_DUPFD {floor}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `high` was just created and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(high) }
}

/// A file descriptor number that is not open in this process (opened high, then closed).
pub fn closed_fd() -> RawFd {
    let file = File::open("/dev/null").unwrap();
    dup_high(&file).as_raw_fd()
    // The duplicate is dropped at the end of the statement above, closing it.
}

/// The number of open file descriptors of this process.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One line of /proc/self/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsEntry {
    pub start: usize,
    pub end: usize,
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    pub path: String,
}

/// Every line of /proc/self/maps.
pub fn maps() -> Vec<MapsEntry> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let perms = fields.next().unwrap().to_owned();
            let offset = u64::from_str_radix(fields.next().unwrap(), 16).unwrap();
            let _dev = fields.next();
            let inode = fields.next().unwrap().parse().unwrap();
            let path = fields.collect::<Vec<_>>().join(" ");
            MapsEntry {
                start: usize::from_str_radix(start, 16).unwrap(),
                end: usize::from_str_radix(end, 16).unwrap(),
                perms,
                offset,
                inode,
                path,
            }
        })
        .collect()
}

/// The /proc/self/maps entries overlapping `[addr, addr + len)`.
pub fn maps_in(addr: *const u8, len: usize) -> Vec<MapsEntry> {
    let (lo, hi) = (addr as usize, addr as usize + len);
    maps().into_iter().filter(|e| e.start < hi && e.end > lo).collect()
}

/// The inode number of `file`.
pub fn inode(file: &File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    file.metadata().unwrap().ino()
}

const FS_APPEND_FL: libc::c_long = 0x20;

/// A file with the append-only attribute (`chattr +a`), cleared again on drop so the
/// temporary directory can be removed.
pub struct AppendOnly {
    pub path: PathBuf,
}

impl AppendOnly {
    /// Marks `path` append-only, or says why this filesystem or process cannot.
    pub fn set(path: &Path) -> Result<AppendOnly, String> {
        set_append_flag(path, true)?;
        Ok(AppendOnly { path: path.to_owned() })
    }
}

impl Drop for AppendOnly {
    fn drop(&mut self) {
        let _ = set_append_flag(&self.path, false);
    }
}

fn set_append_flag(path: &Path, on: bool) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long to the pointer, which points to `flags`.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return Err(format!("FS_IOC_GETFLAGS: {}", std::io::Error::last_os_error()));
    }
    flags = if on {
        flags | FS_APPEND_FL
    } else {
        flags & !FS_APPEND_FL
    };
    // SAFETY: FS_IOC_SETFLAGS reads one long from the pointer, which points to `flags`.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(format!("FS_IOC_SETFLAGS: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// An AF_UNIX stream socket.
pub fn unix_socket() -> OwnedFd {
    // SAFETY: socket() has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The environment variable that tells a re-executed test binary it is the child.
pub const CHILD_ENV: &str = "PMEM2_TEST_CHILD";

/// The action a re-executed test was asked to run, if this process is such a child.
pub fn child_action() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Runs the test named `test` of this test binary again in a child process, with
/// `PMEM2_TEST_CHILD=action` and `env` set (and no inherited PMEM2_FORCE_GRANULARITY or
/// PMEM2_SYSFS_ROOT); the test recognises the child with
/// [`child_action`] and performs `action` instead of its usual body.
pub fn run_child(test: &str, action: &str, env: &[(&str, &str)]) -> Output {
    child_command(test, action, env).output().unwrap()
}

/// The command [`run_child`] runs, for callers that wrap it (strace).
pub fn child_command(test: &str, action: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, action)
        .env_remove("RUST_BACKTRACE")
        .env_remove(pmem2::FORCE_GRANULARITY_ENV)
        .env_remove(pmem2::SYSFS_ROOT_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Asserts that a child process ran its one test and exited with status 0, showing its
/// output if not.
pub fn assert_child_ok(out: &Output) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("test result: ok. 1 passed"),
        "child failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a child process was killed by `signal`.
pub fn assert_child_killed_by(out: &Output, signal: i32) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "child was not killed by signal {signal}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// For tests whose whole body needs process-wide settings (`PMEM2_FORCE_GRANULARITY`,
/// `PMEM_NO_CLWB`, read once per process): runs test `name` again in a child with `env` and
/// asserts it passed. Returns true inside that child, which then does the work.
pub fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    if child_action().as_deref() == Some(name) {
        return true;
    }
    assert_child_ok(&run_child(name, name, env));
    false
}

/// Whether this run must prove everything: `CI` is set (as `.ci/run` sets it).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Checks a prerequisite of `test` that this machine may lack (a tool, a capability). When it
/// is missing, prints one line that cargo's capture does not hide, naming what to install, and
/// returns false so the test can return early; under [`in_ci`] a missing prerequisite fails
/// the test instead, so CI never skips anything.
pub fn prerequisite(test: &str, present: bool, missing: &str) -> bool {
    if present {
        return true;
    }
    let line = format!("SKIPPED {test}: {missing}");
    assert!(!in_ci(), "{line} (CI is set: nothing may be skipped)");
    use std::io::Write;
    // Written to the stream itself: the test harness captures only print!/eprint!.
    let _ = writeln!(std::io::stderr(), "{line}");
    false
}

/// Whether `program` runs (with `arg`, such as `-V`).
pub fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Marks `path` append-only for a test, or says (and returns `None`) why it cannot, through
/// [`prerequisite`].
pub fn append_only_for(test: &str, path: &Path) -> Option<AppendOnly> {
    match AppendOnly::set(path) {
        Ok(guard) => Some(guard),
        Err(why) => {
            prerequisite(
                test,
                false,
                &format!(
                    "cannot make a file append-only ({why}); needs CAP_LINUX_IMMUTABLE and a filesystem with chattr +a"
                ),
            );
            None
        }
    }
}

/// Set by the real-DAX tier (`scripts/dax-guest`) to `CACHE_LINE` or `BYTE` (eADR): the
/// granularity a shared mapping of a file in `TMPDIR` really gets there, without forcing.
pub const REAL_DAX_ENV: &str = "PMEM2_TEST_REAL_DAX";
/// With [`REAL_DAX_ENV`]: a directory on the page cache, for the tests that need PAGE.
pub const PAGE_CACHE_DIR_ENV: &str = "PMEM2_TEST_PAGE_CACHE_DIR";

/// The granularity files in `TMPDIR` really get when it is on DAX ([`REAL_DAX_ENV`]).
pub fn real_dax() -> Option<pmem2::Granularity> {
    let value = std::env::var(REAL_DAX_ENV).ok()?;
    Some(match value.as_str() {
        "CACHE_LINE" => pmem2::Granularity::CacheLine,
        "BYTE" => pmem2::Granularity::Byte,
        _ => panic!("{REAL_DAX_ENV}={value}: expected CACHE_LINE or BYTE"),
    })
}

/// A temporary file on the page cache: in `TMPDIR`, or on the real-DAX tier in
/// [`PAGE_CACHE_DIR_ENV`].
pub fn page_cache_tempfile() -> File {
    match std::env::var_os(PAGE_CACHE_DIR_ENV) {
        Some(dir) => tempfile::tempfile_in(dir).unwrap(),
        None => {
            assert!(
                real_dax().is_none(),
                "{REAL_DAX_ENV} needs {PAGE_CACHE_DIR_ENV} for the PAGE tests"
            );
            tempfile::tempfile().unwrap()
        }
    }
}

/// The environment of a child whose shared mappings of `TMPDIR` files must have granularity
/// `g`: nothing where the platform really offers it ([`REAL_DAX_ENV`]), otherwise
/// `PMEM2_FORCE_GRANULARITY`.
pub fn granularity_env(g: pmem2::Granularity) -> Vec<(&'static str, &'static str)> {
    if real_dax() == Some(g) {
        return Vec::new();
    }
    let name = match g {
        pmem2::Granularity::Byte => "BYTE",
        pmem2::Granularity::CacheLine => "CACHE_LINE",
        pmem2::Granularity::Page => "PAGE",
    };
    vec![(pmem2::FORCE_GRANULARITY_ENV, name)]
}

/// CPUID leaf 7, subleaf 0, read here rather than through pmem2 (the tests' independent view
/// of the CPU's features).
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // `__cpuid_count` is safe from Rust 1.94, unsafe before (the MSRV)
pub fn cpuid_leaf7() -> std::arch::x86_64::CpuidResult {
    // SAFETY: CPUID is baseline on x86_64 and never faults.
    unsafe { std::arch::x86_64::__cpuid_count(7, 0) }
}

/// Whether bit `bit` of CPUID leaf 7's EBX is set (23: CLFLUSHOPT, 24: CLWB).
#[cfg(target_arch = "x86_64")]
pub fn leaf7_ebx(bit: u32) -> bool {
    cpuid_leaf7().ebx & (1 << bit) != 0
}
