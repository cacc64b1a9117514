//! What the kernel says about pmem2's mappings, rather than what pmem2 says: the mmap flags
//! it really passes (strace), /proc/self/maps entries, placement, what another process reads
//! from the file, address-space and fd leaks.

mod common;

use common::{child_action, holey_file, maps, maps_in, page, run_child, GIB, MIB};
use pmem2::{Config, Granularity, Mapping, Protection, Sharing, Source};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn config(offset: u64, length: u64) -> Config {
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    config.set_offset(offset).unwrap().set_length(length);
    config
}

fn rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

// ---- strace: the flags of the real mmap calls

/// Runs `test` of this binary in a child under `strace -f -e trace=mmap`; returns the trace
/// and the child's stdout.
fn strace_child(test: &str, action: &str) -> Option<(String, String)> {
    if !common::prerequisite(
        test,
        common::runs("strace", "-V"),
        "strace is not installed (apt-get install strace)",
    ) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let child = common::child_command(test, action, &[]);
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=mmap", "-o"])
        .arg(&trace)
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove(pmem2::FORCE_GRANULARITY_ENV)
        .output()
        .unwrap_or_else(|e| panic!("cannot run strace ({e}): install it with `apt-get install strace`"));
    common::assert_child_ok(&out);
    Some((
        fs::read_to_string(trace).unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    ))
}

/// The mmap calls of a trace at `addr`: (flags, fd, result) for each.
fn mmaps_at(trace: &str, addr: usize) -> Vec<(Vec<String>, i32, String)> {
    let prefix = format!("mmap({addr:#x}, ");
    trace
        .lines()
        .filter_map(|line| {
            let call = &line[line.find(&prefix)?..];
            let (args, result) = call.split_once(") = ")?;
            let args: Vec<&str> = args.split(", ").collect();
            let flags = args[3].split('|').map(str::to_owned).collect();
            Some((flags, args[4].parse().unwrap(), result.to_owned()))
        })
        .collect()
}

/// The "ADDR FD" line a strace child prints.
fn mapped(stdout: &str) -> (usize, i32) {
    // The harness may have printed "test name ... " on the same line.
    let line = stdout
        .lines()
        .find_map(|l| Some(&l[l.find("MAPPED ")? + 7..]))
        .expect("child printed MAPPED");
    let (addr, fd) = line.split_once(' ').unwrap();
    (
        usize::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap(),
        fd.parse().unwrap(),
    )
}

fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f == flag)
}

#[test]
fn shared_mappings_try_map_sync_first_and_fall_back_to_map_shared() {
    if let Some(action) = child_action() {
        let file = common::holey_tempfile(MIB);
        let (map, fd) = if action == "file" {
            (
                Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()),
                file.as_raw_fd(),
            )
        } else {
            (Mapping::new(&config(0, 0), &Source::from_anon(MIB as usize)), -1)
        };
        println!("MAPPED {:p} {fd}", map.unwrap().address());
        return;
    }
    for action in ["file", "anon"] {
        let Some((trace, stdout)) =
            strace_child("shared_mappings_try_map_sync_first_and_fall_back_to_map_shared", action)
        else {
            return;
        };
        let (addr, fd) = mapped(&stdout);
        let calls = mmaps_at(&trace, addr);
        assert_eq!(calls.len(), 2, "{action}: two mmap calls at {addr:#x}:\n{calls:?}");
        let (first, second) = (&calls[0], &calls[1]);
        // Never MAP_FIXED: a failed MAP_FIXED may unmap what was there, and another thread's
        // mapping may fill the hole before a second MAP_FIXED. The MAP_SYNC attempt passes the
        // hole as a hint (Linux 6.1 refuses MAP_FIXED_NOREPLACE under MAP_SHARED_VALIDATE), the
        // fallback uses MAP_FIXED_NOREPLACE.
        for flag in ["MAP_SHARED_VALIDATE", "MAP_SYNC"] {
            assert!(has(&first.0, flag), "{action}: first call lacks {flag}: {first:?}");
        }
        assert!(!has(&first.0, "MAP_FIXED_NOREPLACE"), "{action}: {first:?}");
        // A page-cache file refuses MAP_SYNC with EOPNOTSUPP; anonymous memory refuses
        // MAP_SHARED_VALIDATE itself with EINVAL. Both must fall back.
        let refusal = if action == "file" { "-1 EOPNOTSUPP" } else { "-1 EINVAL" };
        assert!(first.2.starts_with(refusal), "{action}: {first:?}");
        assert!(
            has(&second.0, "MAP_SHARED") && has(&second.0, "MAP_FIXED_NOREPLACE"),
            "{second:?}"
        );
        assert!(
            calls.iter().all(|c| !has(&c.0, "MAP_FIXED")),
            "{action}: no plain MAP_FIXED: {calls:?}"
        );
        assert!(
            !has(&second.0, "MAP_SYNC") && !has(&second.0, "MAP_SHARED_VALIDATE"),
            "{second:?}"
        );
        assert_eq!(
            second.2,
            format!("{addr:#x}"),
            "the fallback lands at the address the first call tried"
        );
        assert_eq!((first.1, second.1), (fd, fd));
        assert_eq!(has(&second.0, "MAP_ANONYMOUS"), action == "anon");
    }
}

#[test]
fn private_mappings_never_try_map_sync() {
    if child_action().is_some() {
        let file = common::holey_tempfile(MIB);
        let mut config = config(0, 0);
        config.set_sharing(Sharing::Private);
        let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
        println!("MAPPED {:p} {}", map.address(), file.as_raw_fd());
        return;
    }
    let Some((trace, stdout)) = strace_child("private_mappings_never_try_map_sync", "private") else {
        return;
    };
    let (addr, fd) = mapped(&stdout);
    let calls = mmaps_at(&trace, addr);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        has(&calls[0].0, "MAP_PRIVATE") && has(&calls[0].0, "MAP_FIXED_NOREPLACE"),
        "{calls:?}"
    );
    assert_eq!(calls[0].1, fd);
    assert!(!trace.contains("MAP_SYNC"), "no MAP_SYNC anywhere:\n{trace}");
}

// ---- /proc/self/maps

fn named_file(size: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = holey_file(dir.path(), "data", size);
    (dir, path)
}

/// The single /proc/self/maps entry covering a mapping.
fn entry(map: &Mapping) -> common::MapsEntry {
    let entries = maps_in(map.address(), map.size());
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

fn gone(addr: *mut u8, len: usize, inode: u64) {
    let left: Vec<_> = maps_in(addr, len).into_iter().filter(|e| e.inode == inode).collect();
    assert!(left.is_empty(), "still mapped: {left:?}");
}

#[test]
fn maps_shows_the_file_range_and_permissions() {
    let (_dir, path) = named_file(16 * MIB);
    let inode = ino(&path);
    let file = rw(&path);
    let ro = File::open(&path).unwrap();
    let cases = [
        (&file, None, Sharing::Shared, "rw-s"),
        (&ro, Some(Protection::READ), Sharing::Shared, "r--s"),
        (&file, None, Sharing::Private, "rw-p"),
        (
            &ro,
            Some(Protection::READ | Protection::WRITE),
            Sharing::Private,
            "rw-p",
        ),
        (&file, Some(Protection::NONE), Sharing::Shared, "---s"),
        (
            &file,
            Some(Protection::READ | Protection::EXEC),
            Sharing::Shared,
            "r-xs",
        ),
    ];
    for (fd, prot, sharing, perms) in cases {
        let mut config = config(2 * page(), 8 * page());
        config.set_sharing(sharing);
        if let Some(prot) = prot {
            config.set_protection(prot);
        }
        let map = Mapping::new(&config, &Source::from_fd(fd).unwrap()).unwrap();
        let e = entry(&map);
        assert_eq!(
            (e.start, e.end),
            (map.address() as usize, map.address() as usize + 8 * 4096)
        );
        assert_eq!(e.perms, perms);
        assert_eq!(e.offset, 2 * page(), "file offset");
        assert_eq!(e.inode, inode);
        assert_eq!(Path::new(&e.path), path);
        let (addr, len) = (map.address(), map.size());
        drop(map);
        gone(addr, len, inode);
    }
}

#[test]
fn odd_sized_mapping_covers_whole_pages_and_unmap_removes_it() {
    let (_dir, path) = named_file(5000);
    let file = rw(&path);
    let map = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    assert_eq!(map.size(), 5000);
    let e = entry(&map);
    assert_eq!(e.end - e.start, 8192, "two pages back 5000 bytes");
    let addr = map.address();
    map.unmap().unwrap();
    gone(addr, 8192, ino(&path));
}

#[test]
fn anonymous_mappings_are_shared_zero_pages_or_private_memory() {
    let source = Source::from_anon(MIB as usize);
    let shared = Mapping::new(&config(0, 0), &source).unwrap();
    let e = entry(&shared);
    assert_eq!(e.perms, "rw-s");
    assert!(
        e.path.starts_with("/dev/zero"),
        "shared anonymous memory is shmem: {e:?}"
    );
    let mut private_config = config(0, 0);
    private_config.set_sharing(Sharing::Private);
    let private = Mapping::new(&private_config, &source).unwrap();
    let e = maps_in(private.address(), private.size());
    assert!(e.iter().all(|e| e.perms == "rw-p" && e.inode == 0), "{e:?}");
}

#[test]
fn release_file_leaves_anonymous_memory_until_dropped() {
    let (_dir, path) = named_file(MIB);
    let file = rw(&path);
    let map = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    map.write(0, b"file").unwrap();
    let addr = map.address();
    let reserved = map.release_file().unwrap();
    assert_eq!((reserved.address(), reserved.len()), (addr, MIB as usize));
    gone(addr, MIB as usize, ino(&path));
    let entries = maps_in(addr, MIB as usize);
    assert!(
        entries.iter().all(|e| e.inode == 0 && e.perms == "rw-p"),
        "anonymous placeholder: {entries:?}"
    );
    // SAFETY: the range is reserved and readable; it must now be zero-filled anonymous memory.
    assert_eq!(unsafe { addr.read_volatile() }, 0, "the file's bytes are gone");
    drop(reserved);
    assert_eq!(fs::read(&path).unwrap()[..4], *b"file", "the store reached the file");
}

// ---- placement

// pmem2_map TEST29/30 and §3.5: every mapping starts on a 2 MiB boundary, and one of 2 GiB or
// more on a 1 GiB boundary.
#[test]
fn mappings_are_placed_on_huge_page_boundaries() {
    for size in [4096, 5000, 16 << 10, MIB, 2 * MIB + 4096, 16 * MIB] {
        let file = common::holey_tempfile(size);
        let map = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
        assert_eq!(
            map.address() as usize % (2 << 20),
            0,
            "{size} bytes at {:p}",
            map.address()
        );
    }
    let anon = Mapping::new(&config(0, 0), &Source::from_anon(4096)).unwrap();
    assert_eq!(anon.address() as usize % (2 << 20), 0);
    let file = common::holey_tempfile(3 * GIB);
    let big = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    assert_eq!(big.address() as usize % (1 << 30), 0, "3 GiB at {:p}", big.address());
    assert_eq!(entry(&big).end - entry(&big).start, 3 << 30);
}

// ---- other processes

#[test]
fn persisted_stores_are_read_back_by_another_process() {
    let (_dir, path) = named_file(4 * MIB);
    let file = rw(&path);
    let map = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    let pattern: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    map.write(3 * MIB as usize - 17, &pattern).unwrap();
    map.persist(3 * MIB as usize - 17, pattern.len()).unwrap();
    let cat = Command::new("cat").arg(&path).output().unwrap();
    assert!(cat.status.success());
    assert_eq!(cat.stdout.len(), 4 * MIB as usize);
    assert_eq!(cat.stdout[3 * MIB as usize - 17..][..pattern.len()], pattern[..]);
    assert!(cat.stdout[..3 * MIB as usize - 17].iter().all(|&b| b == 0));

    let mut private_config = config(0, 0);
    private_config.set_sharing(Sharing::Private);
    let private = Mapping::new(&private_config, &Source::from_fd(&file).unwrap()).unwrap();
    private.write(0, b"private").unwrap();
    private.persist(0, 7).unwrap();
    let cat = Command::new("cat").arg(&path).output().unwrap();
    assert_eq!(cat.stdout[..7], [0; 7], "private stores never reach the file");
}

#[test]
fn writes_by_another_process_appear_in_a_shared_mapping() {
    let (_dir, path) = named_file(MIB);
    let map = Mapping::new(&config(0, 0), &Source::from_fd(&rw(&path)).unwrap()).unwrap();
    let dd = Command::new("sh")
        .arg("-c")
        .arg("printf 'from dd' | dd of=\"$1\" bs=1 seek=70000 conv=notrunc status=none")
        .arg("sh")
        .arg(&path)
        .status()
        .unwrap();
    assert!(dd.success());
    let mut buf = [0u8; 7];
    map.read(70000, &mut buf).unwrap();
    assert_eq!(&buf, b"from dd");
}

// ---- leaks

fn vm_size_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// Each map reserves len + 2 MiB of address space and trims it; 1000 cycles through every
// path (success, unmap, release_file, and failures after the reservation) must leave no
// mapping and no padding behind.
#[test]
fn thousand_map_unmap_cycles_leak_no_address_space() {
    if child_action().is_none() {
        let out = run_child("thousand_map_unmap_cycles_leak_no_address_space", "cycles", &[]);
        common::assert_child_ok(&out);
        return;
    }
    let (_dir, path) = named_file(3 * MIB + 5000);
    let file = rw(&path);
    let ro = File::open(&path).unwrap();
    let source = Source::from_fd(&file).unwrap();
    let ro_source = Source::from_fd(&ro).unwrap();
    let mut byte = config(0, 0);
    byte.set_required_store_granularity(Granularity::Byte);
    let cycle = |i: u64| {
        let length = (i % 7) * page() * 97 % (3 * MIB);
        let length = length - length % page();
        match i % 5 {
            0 => drop(Mapping::new(&config(0, length), &source).unwrap()),
            1 => Mapping::new(&config(page(), length), &source).unwrap().unmap().unwrap(),
            2 => drop(Mapping::new(&config(0, 0), &source).unwrap().release_file().unwrap()),
            // Mapped, then refused: the platform offers PAGE only.
            3 => assert_eq!(Mapping::new(&byte, &source).unwrap_err().code(), -100009),
            // Reserved, then mmap refuses: O_RDONLY fd, shared, READ|WRITE.
            _ => assert_eq!(Mapping::new(&config(0, 0), &ro_source).unwrap_err().code(), -100032),
        }
    };
    for i in 0..50 {
        cycle(i); // warm up anything lazily allocated
    }
    let (lines, vm) = (maps().len(), vm_size_kib());
    for i in 0..1000 {
        cycle(i);
    }
    let (lines_after, vm_after) = (maps().len(), vm_size_kib());
    assert!(lines_after <= lines, "maps lines {lines} -> {lines_after}");
    assert!(vm_after <= vm + 1024, "VmSize {vm} KiB -> {vm_after} KiB");
}

// libpmem2 keeps no fd: the mapping's source copy has fd -1. Nor does pmem2.
#[test]
fn mapping_keeps_no_file_descriptor() {
    if child_action().is_none() {
        common::assert_child_ok(&run_child("mapping_keeps_no_file_descriptor", "fds", &[]));
        return;
    }
    let (_dir, path) = named_file(MIB);
    let file = rw(&path);
    let before = common::open_fd_count();
    let source = Source::from_fd(&file).unwrap();
    let maps: Vec<Mapping> = (0..10).map(|_| Mapping::new(&config(0, 0), &source).unwrap()).collect();
    assert_eq!(common::open_fd_count(), before, "no fd opened or duplicated");
    drop(file);
    assert_eq!(common::open_fd_count(), before - 1);
    maps[3].write(100, b"after close").unwrap();
    maps[3].persist(100, 11).unwrap();
    let mut buf = [0u8; 11];
    maps[7].read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"after close");
    assert_eq!(fs::read(&path).unwrap()[100..111], *b"after close");
}

#[test]
fn closing_the_fd_keeps_the_mapping_usable() {
    let (_dir, path) = named_file(MIB);
    let file = rw(&path);
    let map = Mapping::new(&config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    drop(file);
    let e = entry(&map);
    assert_eq!(
        Path::new(&e.path),
        path,
        "the kernel keeps the file through the mapping"
    );
    map.write(MIB as usize - 5, b"still").unwrap();
    map.persist(MIB as usize - 5, 5).unwrap();
    assert_eq!(fs::read(&path).unwrap()[MIB as usize - 5..], *b"still");
}
