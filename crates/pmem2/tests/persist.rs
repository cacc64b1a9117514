//! persist / flush / drain: libpmem2's pmem2_persist counts (msync, flush, fence) per
//! granularity, for the methods and the function pointers; the flush instruction chosen
//! under `PMEM_NO_CLWB` / `PMEM_NO_CLFLUSHOPT` (child processes); PAGE persist reporting
//! an msync failure instead of aborting; and, with strace, that PAGE persist makes an msync
//! system call and CACHE_LINE persist makes none. On the real-DAX tier (`PMEM2_TEST_REAL_DAX`)
//! the CACHE_LINE (or, with eADR, BYTE) cases run on a DAX file without forcing.

use pmem2::mem::counters;
#[cfg(target_arch = "x86_64")]
use pmem2::persist::{self, FlushInstruction};
use pmem2::{Config, Granularity, Mapping, Sharing, Source};
use std::process::Command;

mod common;
use common::{granularity_env, in_child, page_cache_tempfile, real_dax, CHILD_ENV};

/// A mapping of a new temporary file (on DAX on the real-DAX tier).
fn file_map(sharing: Sharing) -> (std::fs::File, Mapping) {
    map_of(tempfile::tempfile().unwrap(), sharing)
}

/// A shared mapping of a new file on the page cache.
fn page_map() -> (std::fs::File, Mapping) {
    map_of(page_cache_tempfile(), Sharing::Shared)
}

fn map_of(file: std::fs::File, sharing: Sharing) -> (std::fs::File, Mapping) {
    file.set_len(20 << 20).unwrap();
    let mut config = Config::new();
    config
        .set_required_store_granularity(Granularity::Page)
        .set_sharing(sharing);
    let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
    (file, map)
}

fn counts() -> (u64, u64, u64) {
    (counters::msyncs(), counters::flushes(), counters::fences())
}

/// pmem2_persist's table: (msync, flush, fence) for persist, flush and drain of the whole
/// mapping; `Info.flush` is called once per range, not per line.
fn check_counts(map: &Mapping, expect: [(u64, u64, u64); 3]) {
    let size = map.size();
    map.write(0, &[1; 4096]).unwrap();
    let calls: [&dyn Fn(); 3] = [
        &|| map.persist(0, size).unwrap(),
        &|| map.flush(0, size).unwrap(),
        &|| map.drain(),
    ];
    for (call, want) in calls.iter().zip(expect) {
        counters::reset();
        call();
        assert_eq!(counts(), want, "{:?} methods", map.store_granularity());
    }
    let (persist, flush, drain) = (map.persist_fn(), map.flush_fn(), map.drain_fn());
    // SAFETY: the whole live mapping.
    let fns: [&dyn Fn(); 3] = [
        &|| unsafe { persist(map.address(), size) }.unwrap(),
        &|| unsafe { flush(map.address(), size) }.unwrap(),
        &|| drain(),
    ];
    for (call, want) in fns.iter().zip(expect) {
        counters::reset();
        call();
        assert_eq!(counts(), want, "{:?} function pointers", map.store_granularity());
    }
    // The same functions every time.
    assert_eq!(persist as usize, map.persist_fn() as usize);
    assert_eq!(flush as usize, map.flush_fn() as usize);
    assert_eq!(drain as usize, map.drain_fn() as usize);
}

#[test]
fn page_counts() {
    let (_file, map) = page_map();
    assert_eq!(map.store_granularity(), Granularity::Page);
    check_counts(&map, [(1, 0, 0), (1, 0, 0), (0, 0, 0)]);
    assert_eq!(
        map.persist_fn() as usize,
        map.flush_fn() as usize,
        "PAGE flush is persist"
    );
}

#[test]
fn cache_line_counts() {
    if in_child("cache_line_counts", &granularity_env(Granularity::CacheLine)) {
        let (_file, map) = file_map(Sharing::Shared);
        assert_eq!(map.store_granularity(), Granularity::CacheLine);
        check_counts(&map, [(0, 1, 1), (0, 1, 0), (0, 0, 1)]);
    }
}

#[test]
fn byte_counts() {
    let (_file, map) = file_map(Sharing::Private);
    assert_eq!(map.store_granularity(), Granularity::Byte);
    check_counts(&map, [(0, 0, 1), (0, 0, 0), (0, 0, 1)]);
    if real_dax() == Some(Granularity::Byte) {
        // eADR: a shared mapping of a DAX file is BYTE too.
        let (_file, map) = file_map(Sharing::Shared);
        assert_eq!(map.store_granularity(), Granularity::Byte);
        assert!(map.map_sync());
        check_counts(&map, [(0, 0, 1), (0, 0, 0), (0, 0, 1)]);
    }
}

/// Where libpmem2 aborts, the PAGE persist function returns the msync error.
#[test]
fn page_persist_fn_reports_msync_failure() {
    let (_file, map) = page_map();
    let persist = map.persist_fn();
    let page = pmem2::page_size();
    // A range no mapping can ever occupy (the kernel half of the address space): msync fails
    // with ENOMEM. A page unmapped just before would not do: another test thread's mmap can
    // take it back in between, and msync then succeeds.
    let gone = (usize::MAX - (usize::MAX >> 1)) as *const u8;
    assert_eq!(gone as usize % page, 0);
    // SAFETY: deliberately outside any mapping to provoke the error (see above).
    let err = unsafe { persist(gone, 64) }.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOMEM));
    // And a valid range works, with an unaligned start.
    // SAFETY: inside the live mapping.
    unsafe { persist(map.address().add(100), 5000) }.unwrap();
}

#[cfg(target_arch = "x86_64")]
fn flush_case(name: &str, env: &[(&str, &str)], want: FlushInstruction) {
    let mut env = env.to_vec();
    env.extend(granularity_env(Granularity::CacheLine));
    if in_child(name, &env) {
        assert_eq!(persist::flush_instruction(), want);
        assert_eq!(persist::cpu().flush_instruction(), want);
        let (_file, map) = file_map(Sharing::Shared);
        map.write(0, &[7; 256]).unwrap();
        map.persist(0, 256).unwrap();
        // SAFETY: inside the live mapping.
        unsafe { map.persist_fn()(map.address(), 256) }.unwrap();
        // Copies flush with the same instruction (checked through the variant name).
        counters::reset();
        map.memcpy(0, &[1; 64], pmem2::MemFlags::TEMPORAL).unwrap();
        let ran = counters::snapshot();
        assert_eq!(ran.len(), 1);
        assert_eq!(ran[0].0.flush, persist::FlushMode::Flush(want));
    }
}

/// What libpmem2 picks on this CPU: CLWB (if allowed), else CLFLUSHOPT, else CLFLUSH.
#[cfg(target_arch = "x86_64")]
fn best_flush(clwb_allowed: bool) -> FlushInstruction {
    if clwb_allowed && common::leaf7_ebx(24) {
        FlushInstruction::Clwb
    } else if common::leaf7_ebx(23) {
        FlushInstruction::Clflushopt
    } else {
        FlushInstruction::Clflush
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn default_flush_instruction() {
    let want = best_flush(true);
    flush_case("default_flush_instruction", &[], want);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn no_clwb() {
    let want = best_flush(false);
    flush_case("no_clwb", &[("PMEM_NO_CLWB", "1")], want);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn no_clwb_with_a_value_other_than_1_is_ignored() {
    let want = best_flush(true);
    flush_case(
        "no_clwb_with_a_value_other_than_1_is_ignored",
        &[("PMEM_NO_CLWB", "yes")],
        want,
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn no_clwb_no_clflushopt() {
    flush_case(
        "no_clwb_no_clflushopt",
        &[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")],
        FlushInstruction::Clflush,
    );
}

/// Under strace: a PAGE persist makes exactly the msync system call libpmem2 makes (the
/// page-aligned start, the length up to the end of the range, `MS_SYNC`), a CACHE_LINE persist
/// none. The child prints the mapping's address; the kernel's view of the arguments is
/// compared with it.
#[test]
fn strace_sees_msync_only_for_page() {
    const MODE: &str = "PMEM2_PERSIST_STRACE_MODE";
    // (offset, length) of each persist, and the msync (offset of its start, length) it needs.
    const PERSISTS: [(usize, usize, usize, usize); 4] = [
        (0, 4096, 0, 4096),
        (100, 5000, 0, 5100),
        (3 * 4096 + 17, 1, 3 * 4096, 18),
        ((20 << 20) - 1, 1, (20 << 20) - 4096, 4096),
    ];
    if let Ok(mode) = std::env::var(MODE) {
        if std::env::var(CHILD_ENV).as_deref() != Ok("strace_sees_msync_only_for_page") {
            return;
        }
        let (_file, map) = if mode == "page" {
            page_map()
        } else {
            file_map(Sharing::Shared)
        };
        map.write(0, &[1; 4096]).unwrap();
        use std::io::Write;
        // Not captured by the test harness: the parent reads it.
        writeln!(std::io::stdout(), "mapping at {:#x}", map.address() as usize).unwrap();
        // Markers around the persists, visible in the trace as getppid calls.
        // SAFETY: getppid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getppid) };
        for (offset, len, _, _) in PERSISTS {
            map.persist(offset, len).unwrap();
        }
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_getppid) };
        let want = if mode == "page" {
            Granularity::Page
        } else {
            Granularity::CacheLine
        };
        assert_eq!(map.store_granularity(), want);
        return;
    }
    if !common::prerequisite(
        "strace_sees_msync_only_for_page",
        common::runs("strace", "-V"),
        "strace is not installed (apt-get install strace)",
    ) {
        return;
    }
    assert_eq!(
        pmem2::page_size(),
        4096,
        "the expected msync lengths assume 4 KiB pages"
    );
    let cases = [("page", Vec::new()), ("cl", granularity_env(Granularity::CacheLine))];
    for (mode, env) in cases {
        let log = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new("strace")
            .args(["-f", "-qq", "-X", "raw", "-e", "trace=msync,getppid", "-o"])
            .arg(log.path())
            .arg(std::env::current_exe().unwrap())
            .args(["strace_sees_msync_only_for_page", "--exact", "--test-threads=1"])
            .env(CHILD_ENV, "strace_sees_msync_only_for_page")
            .env(MODE, mode)
            .env_remove(pmem2::FORCE_GRANULARITY_ENV)
            .envs(env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let base = stdout
            .split_once("mapping at 0x")
            .map(|(_, rest)| rest.split(|c: char| !c.is_ascii_hexdigit()).next().unwrap())
            .map(|hex| usize::from_str_radix(hex, 16).unwrap())
            .unwrap_or_else(|| panic!("no address from the child: {stdout}"));
        let trace = std::fs::read_to_string(log.path()).unwrap();
        let between: Vec<&str> = trace
            .split("getppid")
            .nth(1)
            .map(|s| s.lines().filter(|l| l.contains("msync(")).collect())
            .unwrap_or_default();
        // strace -X raw prints the flags as a number: msync(0x7f..., 5100, 0x4) = 0
        let seen: Vec<(usize, usize, String)> = between
            .iter()
            .map(|line| {
                let args = line.split_once("msync(").unwrap().1;
                let args = args.split_once(')').unwrap().0;
                let parts: Vec<&str> = args.split(", ").collect();
                assert_eq!(parts.len(), 3, "{line}");
                let addr = usize::from_str_radix(parts[0].trim_start_matches("0x"), 16).unwrap();
                (addr, parts[1].parse().unwrap(), parts[2].to_owned())
            })
            .collect();
        let want: Vec<(usize, usize, String)> = match mode {
            "page" => PERSISTS
                .iter()
                .map(|&(_, _, from, len)| (base + from, len, format!("{:#x}", libc::MS_SYNC)))
                .collect(),
            _ => Vec::new(),
        };
        assert_eq!(
            seen, want,
            "{mode}: msync(addr, len, flags) between the markers:\n{trace}"
        );
    }
}
