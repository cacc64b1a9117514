//! Every copy implementation available on this CPU, called directly (whatever the process
//! picked), against a shadow buffer, inside guard pages.

use super::generic::{Generic, Libc};
use super::Ops;
use crate::persist::{Empty, Flusher, NoFlush};

type CopyFn = unsafe fn(*mut u8, *const u8, usize);
type SetFn = unsafe fn(*mut u8, u8, usize);

struct Impl {
    name: String,
    copy: CopyFn,
    set: SetFn,
}

fn variants_of<I: Ops, F: Flusher>(isa: &str, out: &mut Vec<Impl>) {
    let flush = format!("{:?}", F::mode());
    out.push(Impl {
        name: format!("{isa} mov {flush}"),
        copy: I::memmove_mov::<F>,
        set: I::memset_mov::<F>,
    });
    out.push(Impl {
        name: format!("{isa} movnt {flush}"),
        copy: I::memmove_movnt::<F>,
        set: I::memset_movnt::<F>,
    });
}

/// All implementations with every flusher the CPU supports (`all_flushers`), or with CLWB /
/// the best flusher only.
fn impls(all_flushers: bool) -> Vec<Impl> {
    let mut out = Vec::new();
    fn with_isa<I: Ops>(isa: &str, all: bool, out: &mut Vec<Impl>) {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::persist::{Clflush, Clflushopt, Clwb, FlushInstruction};
            let best = crate::persist::flush_instruction();
            let f = crate::persist::arch_features();
            if f.clwb && (all || best == FlushInstruction::Clwb) {
                variants_of::<I, Clwb>(isa, out);
            }
            if f.clflushopt && (all || best == FlushInstruction::Clflushopt) {
                variants_of::<I, Clflushopt>(isa, out);
            }
            if all || best == FlushInstruction::Clflush {
                variants_of::<I, Clflush>(isa, out);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        variants_of::<I, crate::persist::Detected>(isa, out);
        if all {
            variants_of::<I, NoFlush>(isa, out);
            variants_of::<I, Empty>(isa, out);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::{Avx, Avx512, Sse2};
        with_isa::<Sse2>("sse2", all_flushers, &mut out);
        let f = crate::persist::arch_features();
        if f.avx {
            with_isa::<Avx>("avx", all_flushers, &mut out);
        }
        if f.avx512f {
            with_isa::<Avx512>("avx512f", all_flushers, &mut out);
        }
    }
    with_isa::<Generic>("generic", all_flushers, &mut out);
    with_isa::<Libc>("libc", all_flushers, &mut out);
    out
}

/// The matrix runs the variants of every feature /proc/cpuinfo lists, which the detection
/// under test does not read: a detection that lost a feature would otherwise test less,
/// silently.
#[test]
#[cfg(target_arch = "x86_64")]
fn impls_cover_every_feature_proc_cpuinfo_lists() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .expect("a flags line")
        .split_whitespace()
        .collect();
    let names: Vec<String> = impls(true).into_iter().map(|i| i.name).collect();
    for (flag, name) in [
        ("avx", "avx movnt Flush(Clflush)"),
        ("avx512f", "avx512f movnt Flush(Clflush)"),
        ("clwb", "sse2 movnt Flush(Clwb)"),
        ("clflushopt", "sse2 movnt Flush(Clflushopt)"),
    ] {
        if flags.contains(&flag) {
            assert!(
                names.iter().any(|n| n == name),
                "{flag} listed, {name} not tested: {names:?}"
            );
        }
    }
}

/// `pages` read-write pages between two PROT_NONE guard pages, with a shadow copy of what
/// the pages should hold. Each check refills and compares only a window around the
/// destination; [`Guarded::verify_all`] compares everything, so a stray store anywhere is
/// still caught (and one into a guard page faults).
struct Guarded {
    base: *mut u8,
    len: usize,
    shadow: Vec<u8>,
}

/// Bytes around a destination that each check refills and compares.
const MARGIN: usize = 128;

impl Guarded {
    fn new(pages: usize) -> Guarded {
        let page = crate::page_size();
        let total = (pages + 2) * page;
        // SAFETY: a fresh anonymous mapping; the guards are made inaccessible right after.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let p = p.cast::<u8>();
            assert_eq!(libc::mprotect(p.cast(), page, libc::PROT_NONE), 0);
            assert_eq!(libc::mprotect(p.add(total - page).cast(), page, libc::PROT_NONE), 0);
            p.add(page)
        };
        Guarded {
            base,
            len: pages * page,
            shadow: vec![0; pages * page],
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the read-write middle of the mapping, owned by self.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the read-write middle of the mapping, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    /// The window `[start - MARGIN, end + MARGIN)` clamped to the buffer.
    fn window(&self, start: usize, end: usize) -> (usize, usize) {
        (start.saturating_sub(MARGIN), (end + MARGIN).min(self.len))
    }

    /// Fills `[lo, hi)` of both the buffer and the shadow with a pattern.
    fn refill(&mut self, lo: usize, hi: usize, seed: u8) {
        for i in lo..hi {
            self.shadow[i] = (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8);
        }
        let (lo_, hi_) = (lo, hi);
        let src = self.shadow[lo_..hi_].to_vec();
        self.bytes_mut()[lo..hi].copy_from_slice(&src);
    }

    fn verify(&self, lo: usize, hi: usize, what: &dyn Fn() -> String) {
        let got = &self.bytes()[lo..hi];
        if got != &self.shadow[lo..hi] {
            let first = got.iter().zip(&self.shadow[lo..hi]).position(|(a, b)| a != b).unwrap();
            panic!("{}: first difference at byte {}", what(), lo + first);
        }
    }

    fn verify_all(&self, what: &str) {
        self.verify(0, self.len, &|| format!("{what}: whole buffer"));
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let page = crate::page_size();
        // SAFETY: unmapping the whole region created in `new`.
        unsafe { libc::munmap(self.base.sub(page).cast(), self.len + 2 * page) };
    }
}

/// Sizes around every boundary of the algorithms: the small-copy classes, one line, the
/// four-line body step, the 768-byte WC barrier, the 256-byte threshold.
fn sizes() -> Vec<usize> {
    let mut s: Vec<usize> = (1..=140).collect();
    for base in [192, 255, 256, 320, 511, 512, 767, 768, 1024, 1600, 4096, 8192, 65536] {
        s.extend([base - 1, base, base + 1]);
    }
    s.sort_unstable();
    s.dedup();
    s
}

/// Copies `len` bytes between two guarded buffers at offsets `d` and `s` and compares the
/// window around the destination with the shadow.
fn check_copy(imp: &Impl, dst: &mut Guarded, src: &mut Guarded, d: usize, s: usize, len: usize) {
    let (lo, hi) = dst.window(d, d + len);
    dst.refill(lo, hi, 1);
    src.refill(s, s + len, 2);
    let copied = src.shadow[s..s + len].to_vec();
    dst.shadow[d..d + len].copy_from_slice(&copied);
    // SAFETY: both ranges are inside their guarded buffers; len > 0.
    unsafe { (imp.copy)(dst.base.add(d), src.base.add(s), len) };
    dst.verify(lo, hi, &|| format!("{}: copy d={d} s={s} len={len}", imp.name));
    src.verify(s, s + len, &|| {
        format!("{}: source changed d={d} s={s} len={len}", imp.name)
    });
}

fn check_set(imp: &Impl, dst: &mut Guarded, d: usize, len: usize) {
    let (lo, hi) = dst.window(d, d + len);
    dst.refill(lo, hi, 3);
    dst.shadow[d..d + len].fill(0xA5);
    // SAFETY: the range is inside the guarded buffer; len > 0.
    unsafe { (imp.set)(dst.base.add(d), 0xA5, len) };
    dst.verify(lo, hi, &|| format!("{}: set d={d} len={len}", imp.name));
}

fn check_move(imp: &Impl, buf: &mut Guarded, d: usize, s: usize, len: usize) {
    let (lo, hi) = buf.window(d.min(s), d.max(s) + len);
    buf.refill(lo, hi, 4);
    buf.shadow.copy_within(s..s + len, d);
    // SAFETY: both ranges are inside the guarded buffer; the function is memmove-safe.
    unsafe { (imp.copy)(buf.base.add(d), buf.base.add(s), len) };
    buf.verify(lo, hi, &|| format!("{}: move d={d} s={s} len={len}", imp.name));
}

#[test]
fn every_alignment_pair_at_boundary_sizes() {
    let page = crate::page_size();
    let mut dst = Guarded::new(3);
    let mut src = Guarded::new(3);
    for imp in impls(false) {
        for len in [1, 7, 8, 9, 31, 63, 64, 65, 129, 255, 256, 257, 769, 2 * page - 128] {
            for da in 0..64 {
                for sa in 0..64 {
                    check_copy(&imp, &mut dst, &mut src, da, sa, len);
                }
                check_set(&imp, &mut dst, da, len);
            }
        }
        dst.verify_all(&imp.name);
        src.verify_all(&imp.name);
    }
}

#[test]
fn every_size_and_destination_alignment_touching_the_guards() {
    let mut dst = Guarded::new(17);
    let mut src = Guarded::new(17);
    let top = dst.len;
    for imp in impls(false) {
        for len in sizes() {
            for da in 0..64 {
                let sa = (da * 37 + 11) % 64;
                // Starting right after the low guard page (plus the alignment) ...
                check_copy(&imp, &mut dst, &mut src, da, sa, len);
                check_set(&imp, &mut dst, da, len);
                // ... and ending right before the high guard page.
                let d = top - len - da;
                check_copy(&imp, &mut dst, &mut src, d, top - len - sa, len);
                check_set(&imp, &mut dst, d, len);
            }
        }
        dst.verify_all(&imp.name);
        src.verify_all(&imp.name);
    }
}

#[test]
fn every_flusher_variant_copies_correctly() {
    let mut dst = Guarded::new(3);
    let mut src = Guarded::new(3);
    for imp in impls(true) {
        for len in [1, 5, 8, 33, 64, 100, 256, 300, 1000, 4096] {
            for da in [0, 1, 8, 31, 63] {
                for sa in [0, 3, 8, 63] {
                    check_copy(&imp, &mut dst, &mut src, da, sa, len);
                }
                check_set(&imp, &mut dst, da, len);
            }
        }
        dst.verify_all(&imp.name);
        src.verify_all(&imp.name);
    }
}

#[test]
fn overlapping_moves_in_both_directions() {
    let mut buf = Guarded::new(6);
    for imp in impls(false) {
        for len in [1, 2, 8, 17, 63, 64, 65, 200, 256, 257, 1000, 4096, 8000] {
            for distance in [1, 2, 7, 8, 13, 31, 63, 64, 65, 127, 128, 255, 256, 300, 1024] {
                for base in [0, 5, 64, 77] {
                    if base + distance + len > buf.len {
                        continue;
                    }
                    // Forward (destination below the source) and backward.
                    check_move(&imp, &mut buf, base, base + distance, len);
                    check_move(&imp, &mut buf, base + distance, base, len);
                }
            }
        }
        buf.verify_all(&imp.name);
    }
}

/// libpmem2's `pmem2_movnt_align`: N = 2 pages, for every s in 0..64: len N-s at dest
/// offset s; dest and src offset s with len N-2s; memcpy, forward and backward memmove,
/// memset; the whole buffer compared.
#[test]
fn movnt_align_cases() {
    let n = 2 * crate::page_size();
    let mut dst = Guarded::new(2);
    let mut src = Guarded::new(2);
    let mut both = Guarded::new(4);
    for imp in impls(false) {
        for s in 0..64 {
            check_copy(&imp, &mut dst, &mut src, 0, s, n - s);
            check_copy(&imp, &mut dst, &mut src, s, 0, n - s);
            check_copy(&imp, &mut dst, &mut src, s, s, n - 2 * s);
            check_set(&imp, &mut dst, s, n - s);
            // F: forward within one buffer; B: backward.
            check_move(&imp, &mut both, 0, s + 1, n - s);
            check_move(&imp, &mut both, s + 1, 0, n - s);
        }
        dst.verify_all(&imp.name);
        both.verify_all(&imp.name);
    }
}

/// A failed msync after a copy reports its own errno; an error without one is EIO.
#[test]
fn msync_errors_keep_their_errno() {
    use std::io;
    for errno in [libc::ENOMEM, libc::EIO, libc::EBUSY, libc::EINVAL] {
        assert_eq!(super::errno_of(io::Error::from_raw_os_error(errno)), errno);
        assert_eq!(super::msync_error(io::Error::from_raw_os_error(errno)).code(), -errno);
    }
    assert_eq!(super::errno_of(io::Error::other("no errno")), libc::EIO);
}
