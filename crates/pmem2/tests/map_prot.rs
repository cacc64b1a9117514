//! Protections: libpmem2's pmem2_map_prot cases. The kernel enforces them, so a forbidden
//! store or jump through a raw pointer must kill the process with SIGSEGV; those run in a
//! child process (this test binary re-executed with `PMEM2_TEST_CHILD` naming the action).
#![allow(unsafe_code)]

mod common;

use common::{assert_child_killed_by, assert_child_ok, child_action, holey_tempfile, run_child, MIB};
use pmem2::{Config, ErrorKind, Granularity, Mapping, Protection, Sharing, Source};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

const R: Protection = Protection::READ;
const W: Protection = Protection::WRITE;
const X: Protection = Protection::EXEC;

/// `mov eax, 4; ret`: the function pmem2_map_prot copies into a mapping and calls.
#[cfg(target_arch = "x86_64")]
const RETURN_4: &[u8] = &[0xb8, 0x04, 0x00, 0x00, 0x00, 0xc3];

fn read_only(file: &File) -> File {
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap()
}

fn map(file: &File, protection: Protection, sharing: Sharing) -> pmem2::Result<Mapping> {
    let mut config = Config::new();
    config
        .set_required_store_granularity(Granularity::Page)
        .set_protection(protection)
        .set_sharing(sharing);
    Mapping::new(&config, &Source::from_fd(file)?)
}

/// A 16 MiB file, and the same file opened read-only.
fn files() -> (File, File) {
    let file = holey_tempfile(16 * MIB);
    let ro = read_only(&file);
    (file, ro)
}

/// Stores one byte through the raw pointer, bypassing pmem2's own protection check.
fn raw_store(map: &Mapping) {
    // SAFETY: the address is inside the live mapping; whether the store is allowed is exactly
    // what the kernel decides (a forbidden one raises SIGSEGV, which the test expects).
    unsafe { map.address().add(4096).write_volatile(0x5a) };
}

#[cfg(target_arch = "x86_64")]
fn call(map: &Mapping) -> i32 {
    // SAFETY: the mapping holds RETURN_4 at its start (or the call faults, which the test
    // expects); it is a complete `extern "C" fn() -> i32`.
    let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(map.address()) };
    f()
}

// TEST0: RW fd, RW protection: writes work.
#[test]
fn read_write_mapping_of_read_write_fd_is_writable() {
    let (file, _) = files();
    let map = map(&file, R | W, Sharing::Shared).unwrap();
    raw_store(&map);
    map.write(0, b"rw").unwrap();
    map.persist(0, 4097).unwrap();
    let mut buf = [0u8; 4097];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!((&buf[..2], buf[4096]), (&b"rw"[..], 0x5a));
}

// TEST1: R fd, RW protection, shared.
#[test]
fn writable_shared_mapping_of_read_only_fd_is_no_access() {
    let (_file, ro) = files();
    for prot in [R | W, W, W | X, R | W | X] {
        let err = map(&ro, prot, Sharing::Shared).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoAccess, "{prot:?}");
        assert_eq!(err.code(), -100032);
    }
}

// pmem2's own guard: copying into a mapping without WRITE is an error, not a crash.
#[test]
fn pmem2_refuses_copies_the_protection_forbids() {
    let (file, ro) = files();
    let read_only_map = map(&ro, R, Sharing::Shared).unwrap();
    assert_eq!(read_only_map.write(0, b"x").unwrap_err().code(), -100032);
    let none = map(&file, Protection::NONE, Sharing::Shared).unwrap();
    assert_eq!(none.read(0, &mut [0u8; 1]).unwrap_err().kind(), ErrorKind::NoAccess);
    assert_eq!(none.write(0, b"x").unwrap_err().kind(), ErrorKind::NoAccess);
    let write_only = map(&file, W, Sharing::Shared).unwrap();
    write_only.write(0, b"w").unwrap();
    assert_eq!(
        write_only.read(0, &mut [0u8; 1]).unwrap_err().kind(),
        ErrorKind::NoAccess
    );
}

// TEST4/5/6/8/9: stores to mappings without WRITE fault.
#[test]
fn store_without_write_protection_is_sigsegv() {
    if let Some(action) = child_action() {
        let (file, ro) = files();
        let map = match action.as_str() {
            "rw-fd-r-prot" => map(&file, R, Sharing::Shared),
            "r-fd-r-prot" => map(&ro, R, Sharing::Shared),
            "r-fd-none-prot" => map(&ro, Protection::NONE, Sharing::Shared),
            "rw-fd-rx-prot-shared" => map(&file, R | X, Sharing::Shared),
            "rw-fd-rx-prot-private" => map(&file, R | X, Sharing::Private),
            _ => unreachable!("{action}"),
        }
        .unwrap();
        raw_store(&map);
        panic!("{action}: the store did not fault");
    }
    for action in [
        "rw-fd-r-prot",
        "r-fd-r-prot",
        "r-fd-none-prot",
        "rw-fd-rx-prot-shared",
        "rw-fd-rx-prot-private",
    ] {
        let out = run_child("store_without_write_protection_is_sigsegv", action, &[]);
        assert_child_killed_by(&out, libc::SIGSEGV);
    }
}

// TEST6 (load side): a PROT_NONE mapping cannot be read either.
#[test]
fn load_from_none_protection_is_sigsegv() {
    if child_action().is_some() {
        let (file, _) = files();
        let map = map(&file, Protection::NONE, Sharing::Shared).unwrap();
        // SAFETY: inside the mapping; the kernel must refuse the load.
        let byte = unsafe { map.address().read_volatile() };
        panic!("the load returned {byte}");
    }
    let out = run_child("load_from_none_protection_is_sigsegv", "load", &[]);
    assert_child_killed_by(&out, libc::SIGSEGV);
}

// TEST7: code written through an RW mapping runs from an R|X mapping of the same file.
#[cfg(target_arch = "x86_64")]
#[test]
fn code_written_through_rw_runs_from_rx() {
    let (file, _) = files();
    let rw = map(&file, R | W, Sharing::Shared).unwrap();
    rw.write(0, RETURN_4).unwrap();
    rw.persist(0, RETURN_4.len()).unwrap();
    drop(rw);
    let rx = map(&file, R | X, Sharing::Shared).unwrap();
    assert_eq!(call(&rx), 4);
}

// TEST10/11: RWX mappings, shared and private, run the code they were given.
#[cfg(target_arch = "x86_64")]
#[test]
fn rwx_mappings_execute() {
    let (file, _) = files();
    for sharing in [Sharing::Shared, Sharing::Private] {
        let rwx = map(&file, R | W | X, sharing).unwrap();
        rwx.write(0, RETURN_4).unwrap();
        assert_eq!(call(&rwx), 4, "{sharing:?}");
    }
}

// TEST12/13: jumping into an RW mapping (no EXEC) faults, shared or private.
#[cfg(target_arch = "x86_64")]
#[test]
fn executing_without_exec_protection_is_sigsegv() {
    if let Some(action) = child_action() {
        let (file, _) = files();
        let sharing = if action == "shared" {
            Sharing::Shared
        } else {
            Sharing::Private
        };
        let rw = map(&file, R | W, sharing).unwrap();
        rw.write(0, RETURN_4).unwrap();
        let got = call(&rw);
        panic!("{action}: the call returned {got}");
    }
    for action in ["shared", "private"] {
        let out = run_child("executing_without_exec_protection_is_sigsegv", action, &[]);
        assert_child_killed_by(&out, libc::SIGSEGV);
    }
}

// TEST14: O_RDONLY fd, PRIVATE, RWX: the code runs from the private copy and the file keeps
// its original bytes.
#[cfg(target_arch = "x86_64")]
#[test]
fn private_rwx_of_read_only_fd_leaves_the_file_unchanged() {
    let (file, ro) = files();
    file.write_all_at(b"original", 0).unwrap();
    let private = map(&ro, R | W | X, Sharing::Private).unwrap();
    private.write(0, RETURN_4).unwrap();
    assert_eq!(call(&private), 4);
    drop(private);
    let again = map(&ro, R, Sharing::Shared).unwrap();
    let mut buf = [0u8; 8];
    again.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"original");
}

// A child that does a permitted store exits normally: the SIGSEGV checks above are about the
// protection, not about re-executing the test binary.
#[test]
fn permitted_store_in_a_child_exits_normally() {
    if child_action().is_some() {
        let (file, _) = files();
        raw_store(&map(&file, R | W, Sharing::Shared).unwrap());
        return;
    }
    assert_child_ok(&run_child("permitted_store_in_a_child_exits_normally", "store", &[]));
}
