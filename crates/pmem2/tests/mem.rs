//! memcpy / memmove / memset through the public API: every flag combination on PAGE
//! (a real ext4/tmp file), CACHE_LINE and BYTE (forced with `PMEM2_FORCE_GRANULARITY`, in
//! child processes) and BYTE (private and anonymous) mappings; compared with a shadow
//! buffer and with the file read back with `pread`; guard pages around the destination; the
//! variant that ran checked through the `path-counters` feature against libpmem2's table
//! (`pmem2_mem_ext`); libpmem2's pmem2_memcpy / memmove / memset / movnt cases; and the
//! environment overrides, each in a child process. On the real-DAX tier
//! (`PMEM2_TEST_REAL_DAX`) the CACHE_LINE (or, with eADR, BYTE) cases run on a DAX file
//! without forcing, and the PAGE cases on `PMEM2_TEST_PAGE_CACHE_DIR`.

use pmem2::mem::counters;
use pmem2::persist::{self, CopyIsa, FlushMode};
use pmem2::{Config, ErrorKind, Granularity, Mapping, MemFlags, Protection, Sharing, Source};
use std::fs::File;
use std::os::unix::fs::FileExt;

mod common;
use common::{granularity_env, in_child, page_cache_tempfile};

/// Pages of each test file.
const PAGES: usize = 40;

/// A mapping of a fresh 40-page file with the first and last page made PROT_NONE, so a
/// stray store before or after the middle pages faults.
struct Target {
    file: File,
    map: Mapping,
    page: usize,
}

impl Target {
    /// A new temporary file (on DAX on the real-DAX tier).
    fn new(sharing: Sharing) -> Target {
        Target::in_file(tempfile::tempfile().unwrap(), sharing)
    }

    /// A new file on the page cache, shared.
    fn page() -> Target {
        Target::in_file(page_cache_tempfile(), Sharing::Shared)
    }

    fn in_file(file: File, sharing: Sharing) -> Target {
        let page = pmem2::page_size();
        file.set_len((PAGES * page) as u64).unwrap();
        let mut config = Config::new();
        config
            .set_required_store_granularity(Granularity::Page)
            .set_sharing(sharing);
        let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
        // SAFETY: the first and last page of our own mapping; nothing else uses them.
        unsafe {
            assert_eq!(libc::mprotect(map.address().cast(), page, libc::PROT_NONE), 0);
            let last = map.address().add((PAGES - 1) * page);
            assert_eq!(libc::mprotect(last.cast(), page, libc::PROT_NONE), 0);
        }
        Target { file, map, page }
    }

    /// The usable window: [lo, hi) offsets.
    fn usable(&self) -> (usize, usize) {
        (self.page, (PAGES - 1) * self.page)
    }

    fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.map.read(offset, &mut buf).unwrap();
        buf
    }

    fn pread(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset as u64).unwrap();
        buf
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

fn all_flags() -> impl Iterator<Item = MemFlags> {
    (0..64u32).map(MemFlags::from_bits_truncate)
}

/// The variant libpmem2 runs (non-temporal?, flush mode), per §4.5 / `pmem2_mem_ext`.
fn expected(granularity: Granularity, flags: MemFlags, len: usize) -> (bool, FlushMode) {
    let cpu = persist::cpu();
    let simd = !matches!(cpu.copy_isa(), CopyIsa::Generic | CopyIsa::Libc);
    let (nt, flush) = if granularity == Granularity::Byte {
        if flags.contains(MemFlags::NOFLUSH) {
            (false, FlushMode::NoFlush)
        } else {
            (flags.contains(MemFlags::NONTEMPORAL), FlushMode::Empty)
        }
    } else if flags.contains(MemFlags::NOFLUSH) {
        (false, FlushMode::NoFlush)
    } else {
        let instr = FlushMode::Flush(cpu.flush_instruction());
        if flags.intersects(MemFlags::WC | MemFlags::NONTEMPORAL) {
            (true, instr)
        } else if flags.intersects(MemFlags::WB | MemFlags::TEMPORAL) {
            (false, instr)
        } else {
            (len >= cpu.movnt_threshold(), instr)
        }
    };
    (nt && simd, flush)
}

/// Checks that exactly one variant ran, the expected one, and the msync/fence counts.
fn check_counters(granularity: Granularity, flags: MemFlags, len: usize, op: counters::Op, what: &str) {
    let ran = counters::snapshot();
    let (nt, flush) = expected(granularity, flags, len);
    let cpu = persist::cpu();
    let isa = cpu.copy_isa();
    assert_eq!(ran.len(), 1, "{what}: {ran:?}");
    let (v, n) = ran[0];
    assert_eq!(n, 1, "{what}");
    assert_eq!(
        (v.op, v.nontemporal, v.flush, v.isa),
        (op, nt, flush, isa),
        "{what}: {}",
        v.name()
    );
    assert_eq!(v.movdir64b, nt && cpu.movdir64b(), "{what}");
    let noflush = flags.contains(MemFlags::NOFLUSH);
    let drains = !flags.intersects(MemFlags::NODRAIN | MemFlags::NOFLUSH);
    let (msyncs, fences) = match granularity {
        Granularity::Page => (u64::from(!noflush), u64::from(!noflush)),
        _ => (0, u64::from(drains)),
    };
    assert_eq!(counters::msyncs(), msyncs, "{what}: msync");
    assert_eq!(counters::fences(), fences, "{what}: fences");
}

/// The whole matrix on one mapping: every flag combination, boundary sizes up to 64 KiB,
/// destination alignments 0..63 (paired with varying source alignments), memcpy from a
/// buffer, memmove within the mapping (both directions) and memset; after each flag
/// combination the whole usable window is compared with the shadow, and with the file via
/// pread when the mapping is shared.
fn matrix(t: &Target, expect: Granularity, alignments: &[usize]) {
    let map = &t.map;
    assert_eq!(map.store_granularity(), expect);
    let (lo, hi) = t.usable();
    let mut shadow = t.read(lo, hi - lo);
    let src_all = pattern(70_000, 7);
    let sizes = [1, 2, 7, 8, 9, 63, 64, 65, 127, 255, 256, 257, 1000, 4096, 4097, 65_536];
    for flags in all_flags() {
        for &len in &sizes {
            for &da in alignments {
                let sa = (da * 7 + 5) % 64;
                let dest = lo + da + (len % 3) * 64;
                let src = &src_all[sa..sa + len];
                counters::reset();
                map.memcpy(dest, src, flags).unwrap();
                check_counters(
                    expect,
                    flags,
                    len,
                    counters::Op::Memmove,
                    &format!("memcpy {flags:?} {len} {da}"),
                );
                shadow[dest - lo..dest - lo + len].copy_from_slice(src);

                let value = (len as u8) ^ (da as u8) ^ 0x5a;
                let dest2 = hi - len - da;
                counters::reset();
                map.memset(dest2, value, len, flags).unwrap();
                check_counters(
                    expect,
                    flags,
                    len,
                    counters::Op::Memset,
                    &format!("memset {flags:?} {len} {da}"),
                );
                shadow[dest2 - lo..dest2 - lo + len].fill(value);

                // Overlapping moves, forward then backward, by a distance depending on da.
                if len + 200 < hi - lo - 70_000 {
                    let from = lo + 70_000 + da;
                    let to = from + 1 + da % 13 * 9;
                    for (d, s) in [(to, from), (from, to)] {
                        counters::reset();
                        map.memmove_within(d, s, len, flags).unwrap();
                        let what = format!("memmove {flags:?} {len} {d}<-{s}");
                        check_counters(expect, flags, len, counters::Op::Memmove, &what);
                        shadow.copy_within(s - lo..s - lo + len, d - lo);
                    }
                }
            }
        }
        assert!(t.read(lo, hi - lo) == shadow, "{flags:?}: mapping differs from shadow");
        if map.sharing() == Sharing::Shared {
            assert!(t.pread(lo, hi - lo) == shadow, "{flags:?}: file differs from shadow");
        }
    }
}

#[test]
fn page_matrix_on_a_real_file() {
    let t = Target::page();
    matrix(&t, Granularity::Page, &[0, 1, 7, 8, 31, 63]);
}

#[test]
fn cache_line_matrix_forced() {
    if in_child("cache_line_matrix_forced", &granularity_env(Granularity::CacheLine)) {
        let t = Target::new(Sharing::Shared);
        matrix(&t, Granularity::CacheLine, &(0..64).collect::<Vec<_>>());
    }
}

#[test]
fn byte_matrix_forced_and_private() {
    if in_child("byte_matrix_forced_and_private", &granularity_env(Granularity::Byte)) {
        matrix(&Target::new(Sharing::Shared), Granularity::Byte, &[0, 3, 8, 63]);
        let private = Target::new(Sharing::Private);
        matrix(&private, Granularity::Byte, &[0, 1, 8, 33]);
        // A private mapping never changes the file.
        assert!(private.pread(0, PAGES * private.page).iter().all(|&b| b == 0));
    }
}

/// The expected variant names of libpmem2's `pmem2_mem_ext` test (128 B < threshold,
/// 1024 B ≥ threshold) on this CPU.
#[test]
fn mem_ext_variant_names() {
    if in_child("mem_ext_variant_names", &granularity_env(Granularity::CacheLine)) {
        let cl = Target::new(Sharing::Shared);
        let byte = Target::new(Sharing::Private);
        let isa = persist::cpu().copy_isa().name();
        let flush = persist::cpu().flush_instruction().name();
        let all = MemFlags::all();
        use MemFlags as F;
        let table: [(MemFlags, [&str; 4]); 8] = [
            (F::empty(), ["mov_F", "movnt_F", "mov_empty", "mov_empty"]),
            (F::NONTEMPORAL, ["movnt_F", "movnt_F", "movnt_empty", "movnt_empty"]),
            (F::TEMPORAL, ["mov_F", "mov_F", "mov_empty", "mov_empty"]),
            (
                F::NONTEMPORAL | F::TEMPORAL,
                ["movnt_F", "movnt_F", "movnt_empty", "movnt_empty"],
            ),
            (F::WC, ["movnt_F", "movnt_F", "mov_empty", "mov_empty"]),
            (F::WB, ["mov_F", "mov_F", "mov_empty", "mov_empty"]),
            (F::NOFLUSH, ["mov_noflush", "mov_noflush", "mov_noflush", "mov_noflush"]),
            (all, ["mov_noflush", "mov_noflush", "mov_noflush", "mov_noflush"]),
        ];
        let data = pattern(1024, 1);
        for (flags, names) in table {
            for (i, (t, len)) in [(&cl, 128), (&cl, 1024), (&byte, 128), (&byte, 1024)]
                .into_iter()
                .enumerate()
            {
                counters::reset();
                t.map.memcpy(t.page, &data[..len], flags).unwrap();
                let ran: Vec<String> = counters::snapshot().iter().map(|(v, _)| v.name()).collect();
                let (store, fl) = names[i].split_once('_').unwrap();
                let fl = if fl == "F" { flush } else { fl };
                assert_eq!(ran, [format!("memmove_{store}_{isa}_{fl}")], "{flags:?} {len}");
            }
        }
    }
}

#[test]
fn anonymous_mappings_are_byte_and_copy() {
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Byte);
    let map = Mapping::new(&config, &Source::from_anon(1 << 20)).unwrap();
    assert_eq!(map.store_granularity(), Granularity::Byte);
    let data = pattern(5000, 3);
    for flags in all_flags() {
        counters::reset();
        map.memcpy(13, &data, flags).unwrap();
        check_counters(Granularity::Byte, flags, data.len(), counters::Op::Memmove, "anon");
        let mut back = vec![0; data.len()];
        map.read(13, &mut back).unwrap();
        assert_eq!(back, data);
    }
    assert_eq!(map.deep_flush(0, 64).unwrap_err().kind(), ErrorKind::NotSupported);
    assert_eq!(
        map.deep_flush(1 << 20, 1).unwrap_err().kind(),
        ErrorKind::DeepFlushRange
    );
}

/// libpmem2 pmem2_memcpy: (dest, src, len) = (0,0,4096), (7,0,4096), (7,9,4096), (0,9,4096);
/// half the bytes are copied from a source filled with 0x5A then 0x46, in both directions
/// between two halves of the mapping; zero-length and self copies change nothing.
#[test]
fn libpmem2_memcpy_cases() {
    let t = Target::new(Sharing::Shared);
    let (lo, _) = t.usable();
    let (a, b) = (lo, lo + 4 * t.page);
    for flags in all_flags() {
        for (dest, src, bytes) in [(0, 0, 4096), (7, 0, 4096), (7, 9, 4096), (0, 9, 4096)] {
            for (d0, s0) in [(a, b), (b, a)] {
                t.map.memset(s0 + src, 0x5A, bytes / 4, MemFlags::empty()).unwrap();
                t.map
                    .memset(s0 + src + bytes / 4, 0x46, bytes / 4, MemFlags::empty())
                    .unwrap();
                t.map.memset(d0 + dest, 0, bytes, MemFlags::empty()).unwrap();
                t.map.memmove_within(d0 + dest, s0 + src, bytes / 2, flags).unwrap();
                let mut want = vec![0x5A; bytes / 4];
                want.extend(vec![0x46; bytes / 4]);
                want.extend(vec![0; bytes / 2]);
                assert_eq!(t.read(d0 + dest, bytes), want, "{flags:?} {dest} {src}");
                assert_eq!(t.pread(d0 + dest, bytes), want, "file {flags:?} {dest} {src}");
            }
        }
        let before = t.read(a, 64);
        t.map.memcpy(a, &[], flags).unwrap();
        t.map.memmove_within(a, a, 64, flags).unwrap();
        t.map.memset(a, 0xff, 0, flags).unwrap();
        assert_eq!(t.read(a, 64), before);
    }
}

/// libpmem2 pmem2_memmove: (b = len, d = dest offset, s = src offset, o = overlap).
#[test]
fn libpmem2_memmove_cases() {
    let t = Target::new(Sharing::Shared);
    let (lo, _) = t.usable();
    let cases: [(usize, usize, usize, bool); 13] = [
        (4096, 0, 0, false),
        (4096, 0, 7, false),
        (4096, 7, 13, false),
        (4096, 0, 23, true),
        (4096, 21, 0, false),
        (4096, 21, 7, false),
        (4096, 0, 20, true),
        (4096, 13, 20, true),
        (2048, 33, 0, true),
        (4096, 20, 0, true),
        (8, 0, 0, false),
        (4, 63, 0, false),
        (8, 2, 0, true),
    ];
    for flags in all_flags() {
        for (b, d, s, overlap) in cases {
            let src_base = if overlap { lo } else { lo + 4 * t.page };
            let init = pattern(3 * 4096, b as u8);
            t.map.write(lo, &init).unwrap();
            t.map.write(lo + 4 * t.page, &init).unwrap();
            let mut shadow = t.read(lo, 8 * t.page);
            t.map.memmove_within(lo + d, src_base + s, b, flags).unwrap();
            shadow.copy_within(src_base - lo + s..src_base - lo + s + b, d);
            assert!(
                t.read(lo, 8 * t.page) == shadow,
                "{flags:?} b:{b} d:{d} s:{s} o:{overlap}"
            );
            assert!(t.pread(lo, 8 * t.page) == shadow, "file {flags:?} b:{b} d:{d} s:{s}");
        }
    }
}

/// libpmem2 pmem2_memset: (offset, len) = (0, 8), (13, 4096), two sets of len/4 bytes.
#[test]
fn libpmem2_memset_cases() {
    let t = Target::new(Sharing::Shared);
    let (lo, _) = t.usable();
    for flags in all_flags() {
        for (off, len) in [(0, 8), (13, 4096)] {
            t.map.write(lo, &pattern(8192, 9)).unwrap();
            let mut want = t.read(lo, 8192);
            t.map.memset(lo + off, 0x5A, len / 4, flags).unwrap();
            t.map.memset(lo + off + len / 4, 0x46, len / 4, flags).unwrap();
            want[off..off + len / 4].fill(0x5A);
            want[off + len / 4..off + len / 2].fill(0x46);
            assert_eq!(t.read(lo, 8192), want, "{flags:?} {off} {len}");
            assert_eq!(t.pread(lo, 8192), want, "file {flags:?} {off} {len}");
        }
    }
}

/// libpmem2 pmem2_movnt: sizes 1, 2, 4, ..., 4096 with NODRAIN for memcpy, memmove and
/// memset; the data is right and the byte after the end untouched.
fn movnt_sizes(t: &Target) {
    let (lo, _) = t.usable();
    let mut size = 1;
    while size <= 4096 {
        for kind in 0..3 {
            t.map.memset(lo, 0, 3 * 4096, MemFlags::empty()).unwrap();
            let src = lo + 4 * 4096;
            let data = pattern(size, kind as u8 + 1);
            let dest = lo + 4096;
            match kind {
                0 => t.map.memcpy(dest, &data, MemFlags::NODRAIN).unwrap(),
                1 => {
                    t.map.write(src, &data).unwrap();
                    t.map.memmove_within(dest, src, size, MemFlags::NODRAIN).unwrap()
                }
                _ => t.map.memset(dest, 0x77, size, MemFlags::NODRAIN).unwrap(),
            }
            t.map.drain();
            let want = if kind == 2 { vec![0x77; size] } else { data };
            assert_eq!(t.read(dest, size), want, "size {size} kind {kind}");
            assert_eq!(
                t.read(dest + size, 1),
                [0],
                "byte after the end, size {size} kind {kind}"
            );
            assert_eq!(t.read(dest - 1, 1), [0], "byte before, size {size} kind {kind}");
        }
        size *= 2;
    }
}

#[test]
fn movnt_default() {
    movnt_sizes(&Target::new(Sharing::Shared));
}

/// Runs the movnt sizes and a short CACHE_LINE matrix under an environment override in a
/// child, after checking the decision the override must produce.
fn override_case(name: &str, env: &[(&str, &str)], check: impl Fn(&persist::CpuConfig)) {
    let mut with_cl = env.to_vec();
    with_cl.extend(granularity_env(Granularity::CacheLine));
    if in_child(name, &with_cl) {
        check(persist::cpu());
        let t = Target::new(Sharing::Shared);
        movnt_sizes(&t);
        matrix(&t, Granularity::CacheLine, &[0, 9, 63]);
    }
}

#[test]
fn env_movnt_threshold() {
    override_case("env_movnt_threshold", &[("PMEM_MOVNT_THRESHOLD", "1024")], |c| {
        assert_eq!(c.movnt_threshold(), 1024)
    });
}

#[test]
fn env_movnt_threshold_small() {
    override_case("env_movnt_threshold_small", &[("PMEM_MOVNT_THRESHOLD", "5")], |c| {
        assert_eq!(c.movnt_threshold(), 5)
    });
}

#[test]
fn env_movnt_threshold_negative_is_ignored() {
    override_case(
        "env_movnt_threshold_negative_is_ignored",
        &[("PMEM_MOVNT_THRESHOLD", "-15")],
        |c| assert_eq!(c.movnt_threshold(), 256),
    );
}

#[test]
fn env_no_movnt_is_generic() {
    override_case("env_no_movnt_is_generic", &[("PMEM_NO_MOVNT", "1")], |c| {
        assert_eq!(c.copy_isa(), CopyIsa::Generic)
    });
}

#[test]
fn env_no_movnt_no_generic_is_libc() {
    override_case(
        "env_no_movnt_no_generic_is_libc",
        &[("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "1")],
        |c| assert_eq!(c.copy_isa(), CopyIsa::Libc),
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_no_avx512f() {
    override_case("env_no_avx512f", &[("PMEM_AVX512F", "0")], |c| {
        let avx = std::arch::is_x86_feature_detected!("avx");
        assert_eq!(c.copy_isa(), if avx { CopyIsa::Avx } else { CopyIsa::Sse2 })
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_no_avx_no_avx512f_is_sse2() {
    override_case(
        "env_no_avx_no_avx512f_is_sse2",
        &[("PMEM_AVX512F", "0"), ("PMEM_AVX", "0")],
        |c| assert_eq!(c.copy_isa(), CopyIsa::Sse2),
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_default_is_best_isa() {
    override_case("env_default_is_best_isa", &[], |c| {
        let want = if std::arch::is_x86_feature_detected!("avx512f") {
            CopyIsa::Avx512f
        } else if std::arch::is_x86_feature_detected!("avx") {
            CopyIsa::Avx
        } else {
            CopyIsa::Sse2
        };
        assert_eq!(c.copy_isa(), want);
        assert!(!c.movdir64b());
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_movdir64b_opt_in() {
    // This CPU may lack MOVDIR64B; then the opt-in must change nothing.
    override_case("env_movdir64b_opt_in", &[("PMEM_MOVDIR64B", "1")], |c| {
        let cpuid7 = common::cpuid_leaf7();
        assert_eq!(c.movdir64b(), cpuid7.ecx & (1 << 28) != 0);
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_wc_workaround_forced_on() {
    override_case(
        "env_wc_workaround_forced_on",
        &[("PMEM_WC_WORKAROUND", "1"), ("PMEM_AVX512F", "0")],
        |c| assert!(c.wc_workaround()),
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_no_clwb_uses_clflushopt_in_copies() {
    override_case("env_no_clwb_uses_clflushopt_in_copies", &[("PMEM_NO_CLWB", "1")], |c| {
        assert_ne!(c.flush_instruction(), persist::FlushInstruction::Clwb)
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn env_no_clwb_no_clflushopt_uses_clflush_in_copies() {
    override_case(
        "env_no_clwb_no_clflushopt_uses_clflush_in_copies",
        &[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")],
        |c| assert_eq!(c.flush_instruction(), persist::FlushInstruction::Clflush),
    );
}

#[test]
fn read_only_and_inaccessible_mappings_refuse_copies() {
    let file = tempfile::tempfile().unwrap();
    file.set_len(1 << 16).unwrap();
    for prot in [Protection::READ, Protection::NONE, Protection::READ | Protection::EXEC] {
        let mut config = Config::new();
        config
            .set_required_store_granularity(Granularity::Page)
            .set_protection(prot);
        let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
        let f = MemFlags::empty();
        assert_eq!(map.memcpy(0, b"x", f).unwrap_err().kind(), ErrorKind::NoAccess);
        assert_eq!(map.memmove(0, b"x", f).unwrap_err().kind(), ErrorKind::NoAccess);
        assert_eq!(map.memset(0, 1, 1, f).unwrap_err().kind(), ErrorKind::NoAccess);
        assert_eq!(map.memmove_within(0, 8, 1, f).unwrap_err().kind(), ErrorKind::NoAccess);
        assert_eq!(map.memcpy(0, b"x", f).unwrap_err().code(), -100032);
        // persist on such a mapping is harmless.
        map.persist(0, 4096).unwrap();
    }
}

#[test]
fn out_of_range_copies_are_errors() {
    let t = Target::new(Sharing::Shared);
    let size = t.map.size();
    let f = MemFlags::empty();
    assert_eq!(
        t.map.memcpy(size - 1, b"ab", f).unwrap_err().kind(),
        ErrorKind::LengthOutOfRange
    );
    assert_eq!(
        t.map.memset(usize::MAX, 0, 2, f).unwrap_err().kind(),
        ErrorKind::LengthOutOfRange
    );
    assert_eq!(
        t.map.memmove_within(0, size - 1, 2, f).unwrap_err().kind(),
        ErrorKind::LengthOutOfRange
    );
    assert_eq!(t.map.deep_flush(size, 1).unwrap_err().kind(), ErrorKind::DeepFlushRange);
    assert_eq!(t.map.deep_flush(1024, size).unwrap_err().code(), -100024);
    // An empty range at the very end is fine.
    t.map.memcpy(size, &[], f).unwrap();
}

/// libpmem2 pmem2_deep_flush on regular files: PAGE → no msync; CACHE_LINE and BYTE → one.
#[test]
fn deep_flush_on_regular_files() {
    if in_child("deep_flush_on_regular_files", &granularity_env(Granularity::CacheLine)) {
        let cl = Target::new(Sharing::Shared);
        counters::reset();
        cl.map.deep_flush(cl.page, 100).unwrap();
        assert_eq!(counters::msyncs(), 1, "CACHE_LINE");
        assert_eq!(counters::deep_flush_writes(), 0);
        return;
    }
    let t = Target::page();
    counters::reset();
    t.map.deep_flush(t.page, 100).unwrap();
    assert_eq!(counters::msyncs(), 0, "PAGE");
    let private = Target::new(Sharing::Private);
    counters::reset();
    private.map.deep_flush(private.page, 100).unwrap();
    assert_eq!(counters::msyncs(), 1, "BYTE (private)");
}

/// The function pointers do what the methods do, without bounds checks.
#[test]
fn function_pointers_copy() {
    let t = Target::new(Sharing::Shared);
    let (lo, _) = t.usable();
    let memcpy = t.map.memcpy_fn();
    let memset = t.map.memset_fn();
    assert_eq!(memcpy as usize, t.map.memmove_fn() as usize, "memcpy is memmove");
    let data = pattern(10_000, 5);
    // SAFETY: the destination ranges are inside the usable part of the live mapping.
    unsafe {
        memcpy(
            t.map.address().add(lo + 3),
            data.as_ptr(),
            data.len(),
            MemFlags::NONTEMPORAL,
        )
        .unwrap();
        memset(t.map.address().add(lo + 20_000), 0x33, 777, MemFlags::TEMPORAL).unwrap();
    }
    assert_eq!(t.pread(lo + 3, data.len()), data);
    assert_eq!(t.pread(lo + 20_000, 777), vec![0x33; 777]);
}
