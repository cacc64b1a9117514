//! A file truncated under a live mapping: every pmem2 routine that touches a page the file
//! no longer covers returns `ErrorKind::IoFail` (the kernel's SIGBUS, caught), the process
//! lives, and the rest of the mapping keeps working. Truncation from this process
//! (`set_len`) and from another one (`truncate(1)`); every copy flag, small and
//! non-temporal sizes, every copy implementation and flush instruction (environment
//! overrides in child processes), PAGE, CACHE_LINE and BYTE granularity; the source of a
//! copy being the truncated mapping; hundreds of faults on several threads. Direct access
//! through a raw pointer still dies of SIGBUS, and SIGBUS handlers installed before pmem2's
//! still get every SIGBUS that is not pmem2's.
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use pmem2::{Config, ErrorKind, Granularity, Mapping, MemFlags, Source};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use common::{assert_child_killed_by, assert_child_ok, child_action, in_child, run_child};

/// Pages of each test file.
const PAGES: usize = 16;
/// Pages the file keeps after truncation.
const KEEP: usize = 4;
/// Copy lengths: small, around a cache line, around the non-temporal threshold (256), and
/// multi-page.
const SIZES: [usize; 8] = [1, 8, 63, 64, 255, 256, 4096, 3 * 4096 + 7];

fn page() -> usize {
    pmem2::page_size()
}

/// A file of `PAGES` pages, mapped shared (granularity as the environment forces it).
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: File,
    map: Mapping,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len((PAGES * page()) as u64).unwrap();
        let mut config = Config::new();
        config.set_required_store_granularity(Granularity::Page);
        let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
        Fixture {
            _dir: dir,
            path,
            file,
            map,
        }
    }

    /// Truncates the file to `KEEP` pages with `ftruncate` from this process.
    fn truncate_here(&self) {
        self.file.set_len((KEEP * page()) as u64).unwrap();
    }

    /// Truncates the file to `KEEP` pages with the `truncate` command.
    fn truncate_from_another_process(&self) {
        let status = Command::new("truncate")
            .arg("-s")
            .arg((KEEP * page()).to_string())
            .arg(&self.path)
            .status()
            .expect("run truncate(1)");
        assert!(status.success(), "truncate(1): {status:?}");
        assert_eq!(self.file.metadata().unwrap().len(), (KEEP * page()) as u64);
    }

    /// The file's bytes at `offset`, read with pread.
    fn pread(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset as u64).unwrap();
        buf
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn all_flags() -> impl Iterator<Item = MemFlags> {
    (0..64u32).map(MemFlags::from_bits_truncate)
}

/// Asserts that `result` is an IoFail for a SIGBUS at an offset of the mapping in
/// `[lo, hi)`, and returns the offset.
fn assert_fault_in<T: std::fmt::Debug>(result: pmem2::Result<T>, what: &str, lo: usize, hi: usize) -> usize {
    let err = result.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::IoFail, "{what}: {err}");
    assert_eq!((err.code(), err.name()), (-100037, "PMEM2_E_IO_FAIL"), "{what}");
    let message = err.message();
    assert!(message.contains("SIGBUS (BUS_ADRERR)"), "{what}: {message}");
    assert!(message.contains("truncated under the mapping"), "{what}: {message}");
    let offset: usize = message
        .split("at offset ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no offset in {message:?}"));
    assert!(
        lo <= offset && offset < hi,
        "{what}: fault at {offset}, not in [{lo}, {hi})"
    );
    offset
}

/// Asserts an IoFail for a SIGBUS outside the mapping (in the other buffer of a copy).
fn assert_fault_outside<T: std::fmt::Debug>(result: pmem2::Result<T>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::IoFail, "{what}: {err}");
    assert!(
        err.message().contains("outside this mapping"),
        "{what}: {}",
        err.message()
    );
}

/// Every operation on the truncated part of `fx` (already truncated to `KEEP` pages) fails
/// with IoFail; then the part the file still covers works. Returns the number of faults.
fn exercise(fx: &Fixture, persist_faults: bool) -> usize {
    let map = &fx.map;
    let page = page();
    let end = KEEP * page; // the new end of the file
    let beyond = end + page + 8; // unaligned, a page past the end
    let src = pattern(4 * page, 3);
    let mut faults = 0;
    let mut expect = |result: pmem2::Result<()>, what: &str, offset: usize, len: usize| {
        assert_fault_in(result, what, end.max(offset & !63), offset + len);
        faults += 1;
    };

    for &len in &SIZES {
        let mut buf = vec![0u8; len];
        expect(map.read(beyond, &mut buf), &format!("read {len}"), beyond, len);
        expect(map.write(beyond, &src[..len]), &format!("write {len}"), beyond, len);
        for flags in all_flags() {
            let what = format!("{len} bytes, {flags:?}");
            expect(
                map.memcpy(beyond, &src[..len], flags),
                &format!("memcpy {what}"),
                beyond,
                len,
            );
            expect(
                map.memmove(beyond, &src[..len], flags),
                &format!("memmove {what}"),
                beyond,
                len,
            );
            expect(
                map.memset(beyond, 0x5a, len, flags),
                &format!("memset {what}"),
                beyond,
                len,
            );
            // Into the truncated part from the part still covered, and the other way.
            expect(
                map.memmove_within(beyond, 64, len, flags),
                &format!("memmove_within to the lost part, {what}"),
                beyond,
                len,
            );
            expect(
                map.memmove_within(64, beyond, len, flags),
                &format!("memmove_within from the lost part, {what}"),
                beyond,
                len,
            );
        }
    }
    // Ranges that start in the covered part and run past the end of the file.
    let straddle = end - 100;
    let mut buf = vec![0u8; 300];
    expect(map.read(straddle, &mut buf), "straddling read", straddle, 300);
    expect(map.write(straddle, &src[..300]), "straddling write", straddle, 300);
    expect(
        map.memcpy(straddle, &src[..300], MemFlags::NONTEMPORAL),
        "straddling memcpy",
        straddle,
        300,
    );
    expect(
        map.memset(straddle, 1, 300, MemFlags::empty()),
        "straddling memset",
        straddle,
        300,
    );

    for (offset, len) in [
        (beyond, 1),
        (beyond, 64),
        (beyond, 3 * page),
        (straddle, 300),
        (end, page),
    ] {
        if persist_faults {
            expect(
                map.persist(offset, len),
                &format!("persist {offset}+{len}"),
                offset,
                len,
            );
            expect(map.flush(offset, len), &format!("flush {offset}+{len}"), offset, len);
        } else {
            map.persist(offset, len).unwrap();
            map.flush(offset, len).unwrap();
        }
    }

    // The part the file still covers keeps working, through every kind of call.
    let data = pattern(end, 9);
    map.write(0, &data[..page]).unwrap();
    map.memcpy(page, &data[page..2 * page], MemFlags::NONTEMPORAL).unwrap();
    map.memset(2 * page, 0x77, page, MemFlags::empty()).unwrap();
    map.memmove_within(3 * page, 0, page, MemFlags::TEMPORAL).unwrap();
    map.persist(0, end).unwrap();
    let mut expected = data[..2 * page].to_vec();
    expected.extend(std::iter::repeat_n(0x77, page));
    expected.extend_from_slice(&data[..page]);
    let mut back = vec![0u8; end];
    map.read(0, &mut back).unwrap();
    assert!(back == expected, "mapping content after the faults");
    assert!(fx.pread(0, end) == expected, "file content after the faults");
    faults
}

#[test]
fn truncated_here_every_call_fails_with_io_fail_page() {
    let fx = Fixture::new();
    assert_eq!(fx.map.store_granularity(), Granularity::Page);
    fx.truncate_here();
    let faults = exercise(&fx, true);
    assert!(faults > 1000, "{faults} faults");
}

#[test]
fn truncated_here_every_call_fails_with_io_fail_cache_line() {
    if in_child(
        "truncated_here_every_call_fails_with_io_fail_cache_line",
        &[("PMEM2_FORCE_GRANULARITY", "CACHE_LINE")],
    ) {
        let fx = Fixture::new();
        assert_eq!(fx.map.store_granularity(), Granularity::CacheLine);
        fx.truncate_here();
        exercise(&fx, true);
    }
}

#[test]
fn truncated_here_copies_fail_with_io_fail_byte() {
    if in_child(
        "truncated_here_copies_fail_with_io_fail_byte",
        &[("PMEM2_FORCE_GRANULARITY", "BYTE")],
    ) {
        let fx = Fixture::new();
        assert_eq!(fx.map.store_granularity(), Granularity::Byte);
        fx.truncate_here();
        // A BYTE persist is a fence: it touches no memory and so reports nothing.
        exercise(&fx, false);
    }
}

/// Every copy implementation and flush instruction this CPU can run recovers: the same
/// exercise under CACHE_LINE with libpmem2's overrides, each in its own process.
#[test]
fn every_copy_implementation_and_flush_instruction_recovers() {
    let name = "every_copy_implementation_and_flush_instruction_recovers";
    if child_action().as_deref() == Some(name) {
        let fx = Fixture::new();
        fx.truncate_here();
        exercise(&fx, true);
        return;
    }
    let overrides: &[&[(&str, &str)]] = &[
        &[("PMEM_AVX512F", "0")],
        &[("PMEM_AVX512F", "0"), ("PMEM_AVX", "0")],
        &[("PMEM_MOVDIR64B", "1")],
        &[("PMEM_NO_MOVNT", "1")],
        &[("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "1")],
        &[("PMEM_NO_CLWB", "1")],
        &[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")],
    ];
    for env in overrides {
        let mut env = env.to_vec();
        env.push(("PMEM2_FORCE_GRANULARITY", "CACHE_LINE"));
        let out = run_child(name, name, &env);
        assert_child_ok(&out);
    }
}

#[test]
fn truncated_by_another_process() {
    let fx = Fixture::new();
    fx.map.write(0, b"before").unwrap();
    fx.truncate_from_another_process();
    let beyond = (KEEP + 1) * page();
    let end = KEEP * page();
    let mut buf = [0u8; 512];
    assert_fault_in(fx.map.read(beyond, &mut buf), "read", end, beyond + 512);
    assert_fault_in(fx.map.write(beyond, &buf), "write", end, beyond + 512);
    assert_fault_in(
        fx.map.memcpy(beyond, &buf, MemFlags::empty()),
        "memcpy",
        end,
        beyond + 512,
    );
    assert_fault_in(
        fx.map.memset(beyond, 0, 512, MemFlags::NONTEMPORAL),
        "memset",
        end,
        beyond + 512,
    );
    assert_fault_in(fx.map.persist(beyond, 512), "persist", end, beyond + 512);
    let mut back = [0u8; 6];
    fx.map.read(0, &mut back).unwrap();
    assert_eq!(&back, b"before");
    fx.map.write(6, b" and after").unwrap();
    fx.map.persist(0, 16).unwrap();
    assert_eq!(fx.pread(0, 16), b"before and after");
}

/// The faulting page is in the other buffer of the copy: a source (or a `read` destination)
/// that is itself a truncated mapping.
#[test]
fn the_other_buffer_of_a_copy_is_truncated() {
    let healthy = Fixture::new();
    let lost = Fixture::new();
    lost.truncate_here();
    let beyond = (KEEP + 1) * page();
    // SAFETY: inside `lost`'s mapping, which outlives the slices; the slices only reach
    // pmem2's guarded copies, which fault on the pages the file no longer covers.
    let (src, dst) = unsafe {
        (
            std::slice::from_raw_parts(lost.map.address().add(beyond), 4096),
            std::slice::from_raw_parts_mut(lost.map.address().add(beyond + 8192), 4096),
        )
    };
    for flags in all_flags() {
        assert_fault_outside(healthy.map.memcpy(0, src, flags), &format!("memcpy {flags:?}"));
        assert_fault_outside(healthy.map.memmove(0, src, flags), &format!("memmove {flags:?}"));
    }
    assert_fault_outside(healthy.map.write(0, src), "write");
    assert_fault_outside(healthy.map.read(0, dst), "read into");
    healthy.map.write(0, b"still fine").unwrap();
    healthy.map.persist(0, 10).unwrap();
    assert_eq!(healthy.pread(0, 10), b"still fine");
}

/// Hundreds of faults on several threads at once, each followed by a checked write and read
/// on that thread: the handler state is clean after each recovery, and a recovery returns to
/// the right thread with its registers intact.
#[test]
fn hundreds_of_faults_on_four_threads() {
    let fx = Fixture::new();
    fx.truncate_here();
    let page = page();
    let end = KEEP * page;
    let recovered = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4usize {
            let (fx, recovered) = (&fx, &recovered);
            scope.spawn(move || {
                let mine = t * page; // each thread's own page of the covered part
                let mut checksum = 0u64;
                for round in 0..250usize {
                    let at = end + page + (round * 97 + t * 13) % (8 * page);
                    let data = pattern(200, (round + t) as u8);
                    let result = match round % 5 {
                        0 => fx.map.write(at, &data),
                        1 => fx.map.read(at, &mut [0u8; 200]),
                        2 => fx.map.memcpy(at, &data, MemFlags::NONTEMPORAL),
                        3 => fx.map.memset(at, round as u8, 300, MemFlags::empty()),
                        _ => fx.map.persist(at, 200),
                    };
                    assert_fault_in(result, &format!("thread {t} round {round}"), end, at + 300);
                    recovered.fetch_add(1, Ordering::Relaxed);
                    fx.map.write(mine + round % 64, &data).unwrap();
                    let mut back = [0u8; 200];
                    fx.map.read(mine + round % 64, &mut back).unwrap();
                    assert!(back[..] == data[..], "thread {t} round {round}");
                    checksum = checksum.wrapping_mul(31).wrapping_add(u64::from(back[round % 200]));
                }
                let expected = (0..250usize).fold(0u64, |sum, round| {
                    let data = pattern(200, (round + t) as u8);
                    sum.wrapping_mul(31).wrapping_add(u64::from(data[round % 200]))
                });
                assert_eq!(checksum, expected, "thread {t}: state across recoveries");
            });
        }
    });
    assert_eq!(recovered.load(Ordering::Relaxed), 1000);
}

/// Truncated, extended again: the pages are zero-filled file pages once more and every
/// operation works on them.
#[test]
fn extending_the_file_again_makes_the_pages_usable() {
    let fx = Fixture::new();
    fx.map.write(0, b"kept").unwrap();
    fx.truncate_here();
    let beyond = (KEEP + 2) * page();
    assert_fault_in(fx.map.write(beyond, b"lost"), "write", KEEP * page(), beyond + 4);
    fx.file.set_len((PAGES * page()) as u64).unwrap();
    fx.map.write(beyond, b"back").unwrap();
    fx.map.persist(beyond, 4).unwrap();
    assert_eq!(fx.pread(beyond, 4), b"back");
    assert_eq!(fx.pread(0, 4), b"kept");
}

/// In a child: maps and truncates a file, lets pmem2 recover one fault (so its handler is
/// installed), then reads a lost page through a raw pointer.
fn raw_access_after_a_recovered_fault() {
    no_core_dump();
    let fx = Fixture::new();
    fx.truncate_here();
    let beyond = (KEEP + 1) * page();
    assert_fault_in(fx.map.read(beyond, &mut [0u8; 8]), "read", KEEP * page(), beyond + 8);
    println!("recovered; now a raw read");
    // SAFETY: inside the mapping; the page is past the end of the file, so this read raises
    // SIGBUS, which must kill the process.
    let value = unsafe { fx.map.address().add(beyond).read_volatile() };
    println!("survived a raw read of a lost page: {value}");
}

/// Keeps a child that is meant to die of SIGBUS from writing a core file.
fn no_core_dump() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) }, 0);
}

/// Direct access is not guarded: a raw read of a lost page still kills the process with
/// SIGBUS, through the Rust runtime's handler (installed before pmem2's in every Rust
/// program) and through the default action.
#[test]
fn raw_pointer_access_still_dies_of_sigbus() {
    match child_action().as_deref() {
        Some("rust-runtime-handler") => return raw_access_after_a_recovered_fault(),
        Some("default-action") => {
            // SAFETY: restores the default SIGBUS action before pmem2 installs its own.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            return raw_access_after_a_recovered_fault();
        }
        _ => {}
    }
    for action in ["rust-runtime-handler", "default-action"] {
        let out = run_child("raw_pointer_access_still_dies_of_sigbus", action, &[]);
        assert_child_killed_by(&out, libc::SIGBUS);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("recovered; now a raw read"), "{action}: {stdout}");
    }
}

/// How often the user's handler ran, and the address it saw.
static USER_CALLS: AtomicUsize = AtomicUsize::new(0);
static USER_ADDR: AtomicUsize = AtomicUsize::new(0);
/// The page the plain (non-SA_SIGINFO) handler repairs.
static REPAIR_PAGE: AtomicUsize = AtomicUsize::new(0);

/// Puts a fresh anonymous page over the page at `addr`, so the access that faulted succeeds
/// when the handler returns.
fn repair(addr: usize) {
    let page = page();
    // SAFETY: replaces one page of the test's own mapping with anonymous memory.
    let p = unsafe {
        libc::mmap(
            (addr & !(page - 1)) as *mut libc::c_void,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
}

extern "C" fn user_siginfo_handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel's siginfo for a SIGBUS fault.
    let addr = unsafe { (*info).si_addr() } as usize;
    USER_CALLS.fetch_add(1, Ordering::SeqCst);
    USER_ADDR.store(addr, Ordering::SeqCst);
    repair(addr);
}

extern "C" fn user_plain_handler(_sig: libc::c_int) {
    USER_CALLS.fetch_add(1, Ordering::SeqCst);
    repair(REPAIR_PAGE.load(Ordering::SeqCst));
}

/// A SIGBUS handler the program installed before pmem2's first guarded call still gets
/// every SIGBUS outside pmem2's routines (here it repairs the page and the raw access goes
/// on), and does not see the faults pmem2 recovers.
#[test]
fn a_handler_installed_before_still_gets_other_faults() {
    let name = "a_handler_installed_before_still_gets_other_faults";
    for action in ["siginfo", "plain"] {
        if child_action().as_deref() != Some(action) {
            continue;
        }
        // SAFETY: installs this test's handler for SIGBUS in the child process.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            if action == "siginfo" {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = user_siginfo_handler;
                sa.sa_sigaction = handler as usize;
                sa.sa_flags = libc::SA_SIGINFO;
            } else {
                let handler: extern "C" fn(libc::c_int) = user_plain_handler;
                sa.sa_sigaction = handler as usize;
            }
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
        }
        let fx = Fixture::new();
        fx.truncate_here();
        let page = page();
        let (first, second) = ((KEEP + 1) * page, (KEEP + 3) * page);
        assert_fault_in(fx.map.write(first, b"x"), "write", first, first + 1);
        assert_eq!(
            USER_CALLS.load(Ordering::SeqCst),
            0,
            "pmem2's fault reached the user handler"
        );

        let raw = fx.map.address().wrapping_add(first + 100);
        REPAIR_PAGE.store(raw as usize, Ordering::SeqCst);
        // SAFETY: inside the mapping; the fault is repaired by the user's handler.
        let value = unsafe { raw.read_volatile() };
        assert_eq!(value, 0, "the repaired page is fresh anonymous memory");
        assert_eq!(USER_CALLS.load(Ordering::SeqCst), 1);
        if action == "siginfo" {
            assert_eq!(USER_ADDR.load(Ordering::SeqCst), raw as usize);
        }
        // pmem2 still recovers its own faults afterwards.
        assert_fault_in(
            fx.map.memset(second, 1, 64, MemFlags::empty()),
            "memset",
            second,
            second + 64,
        );
        assert_eq!(USER_CALLS.load(Ordering::SeqCst), 1);
        return;
    }
    if child_action().is_none() {
        for action in ["siginfo", "plain"] {
            assert_child_ok(&run_child(name, action, &[]));
        }
    }
}
