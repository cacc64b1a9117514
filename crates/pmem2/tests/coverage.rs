//! What each persist, flush, drain and copy really covered, from the event log of the
//! `path-counters` feature (`counters::record` / `take_events`): the address given to every
//! cache-line flush instruction, the bytes of every non-temporal store, every store fence and
//! the arguments of every msync, each recorded by the function that issues it.
//!
//! For every granularity, size class (0, 1, 63, 64, 65, 4095, 4096, 4097, 1 MiB + 123) and
//! start (line and page aligned, one byte off, the last bytes of the mapping), the range must be
//! covered exactly as libpmem2 rounds it:
//!
//! - CACHE_LINE: every line from `addr & !63` up to `addr + len` flushed once, no other line,
//!   then one fence (persist); no fence in flush; a fence alone in drain.
//! - PAGE: one `msync(addr & !(page - 1), addr + len - that, MS_SYNC)`, clipped to the mapping
//!   (libpmem2's `pmem2_flush_file_buffers`), nothing for length 0.
//! - BYTE: a fence and nothing else.
//! - Copies: every line of the destination either flushed or written by non-temporal stores,
//!   nothing outside it, then the drain's fence (unless NODRAIN/NOFLUSH), and on PAGE the
//!   fence and msync of the destination's pages even with NODRAIN.
//!
//! CACHE_LINE runs in child processes under `PMEM2_FORCE_GRANULARITY=CACHE_LINE`, once per
//! flush instruction this CPU has and once per copy implementation (`PMEM_AVX512F=0`,
//! `PMEM_AVX=0`, `PMEM_NO_MOVNT=1`, `PMEM_NO_GENERIC_MEMCPY=1`, `PMEM_WC_WORKAROUND=1`).

use pmem2::mem::counters::{self, Event};
use pmem2::persist::{self, CopyIsa, FlushInstruction};
use pmem2::{Config, Granularity, Mapping, MemFlags, Protection, Sharing, Source};
use std::collections::BTreeSet;

mod common;
use common::in_child;

const LINE: usize = 64;
/// 2 MiB and a partial page: the mapping's end is not page aligned.
const MAP_SIZE: usize = (2 << 20) + 5000;
const LARGE: usize = (1 << 20) + 123;
const SIZES: [usize; 9] = [0, 1, 63, 64, 65, 4095, 4096, 4097, LARGE];

struct Target {
    _file: std::fs::File,
    map: Mapping,
}

fn target(sharing: Sharing, want: Granularity) -> Target {
    let file = tempfile::tempfile().unwrap();
    file.set_len(MAP_SIZE as u64).unwrap();
    let mut config = Config::new();
    config
        .set_required_store_granularity(Granularity::Page)
        .set_sharing(sharing);
    let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
    assert_eq!(map.store_granularity(), want);
    assert_eq!(map.size(), MAP_SIZE);
    Target { _file: file, map }
}

/// Every (offset, length) of the matrix: each size at each start, at the end of the mapping,
/// and the mapping's last byte.
fn ranges() -> Vec<(usize, usize)> {
    let page = pmem2::page_size();
    let starts = [0, 1, 63, LINE, 4095, page + 17, 3 * page - 1];
    let mut out = BTreeSet::new();
    for len in SIZES {
        // The large size at fewer starts: each of its copies stores a MiB in a debug build.
        let starts = if len == LARGE { &starts[..3] } else { &starts[..] };
        for &start in starts {
            out.insert((start, len));
        }
        out.insert((MAP_SIZE - len, len));
        out.insert(((MAP_SIZE - len) & !(LINE - 1), len));
    }
    out.insert((MAP_SIZE - 1, 1));
    out.into_iter().filter(|&(o, l)| o + l <= MAP_SIZE).collect()
}

/// Runs `f` with this thread's event log on and returns what it recorded.
fn recorded<R>(f: impl FnOnce() -> R) -> (R, Vec<Event>) {
    counters::record();
    let r = f();
    (r, counters::take_events())
}

/// The lines libpmem2 flushes for `[addr, addr + len)`: from `addr & !63` while below the end.
fn lines_of(addr: usize, len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    ((addr & !(LINE - 1))..addr + len).step_by(LINE).collect()
}

/// libpmem2's PAGE persist of `[addr, addr + len)` in `map`: the page-aligned start, the end
/// clipped to the mapping's pages; nothing for an empty range.
fn msync_of(map: &Mapping, addr: usize, len: usize) -> Vec<Event> {
    if len == 0 {
        return Vec::new();
    }
    let page = pmem2::page_size();
    let from = addr & !(page - 1);
    let mapped_end = map.address() as usize + map.size().next_multiple_of(page);
    let to = (addr + len).min(mapped_end);
    vec![Event::Msync {
        addr: from,
        len: to - from,
        flags: libc::MS_SYNC,
    }]
}

fn flushes_of(instruction: FlushInstruction, addr: usize, len: usize) -> Vec<Event> {
    lines_of(addr, len)
        .into_iter()
        .map(|line| Event::Flush {
            instruction,
            addr: line,
        })
        .collect()
}

/// persist, flush, drain and their function pointers over `[offset, offset + len)`.
fn check_persist(map: &Mapping, offset: usize, len: usize) {
    let addr = map.address() as usize + offset;
    let what = format!("{:?} offset {offset} len {len}", map.store_granularity());
    let (persist_expected, flush_expected, drain_expected) = match map.store_granularity() {
        Granularity::Page => (msync_of(map, addr, len), msync_of(map, addr, len), vec![]),
        Granularity::CacheLine => {
            let flushes = flushes_of(persist::flush_instruction(), addr, len);
            let mut persist = flushes.clone();
            persist.push(Event::Fence);
            (persist, flushes, vec![Event::Fence])
        }
        Granularity::Byte => (vec![Event::Fence], vec![], vec![Event::Fence]),
    };
    let (r, events) = recorded(|| map.persist(offset, len));
    r.unwrap();
    assert_eq!(events, persist_expected, "persist {what}");
    let (r, events) = recorded(|| map.flush(offset, len));
    r.unwrap();
    assert_eq!(events, flush_expected, "flush {what}");
    let ((), events) = recorded(|| map.drain());
    assert_eq!(events, drain_expected, "drain {what}");

    let (persist_fn, flush_fn, drain_fn) = (map.persist_fn(), map.flush_fn(), map.drain_fn());
    let ptr = addr as *const u8;
    // SAFETY: the range is inside the live mapping.
    let (r, events) = recorded(|| unsafe { persist_fn(ptr, len) });
    r.unwrap();
    assert_eq!(events, persist_expected, "persist_fn {what}");
    // SAFETY: as above.
    let (r, events) = recorded(|| unsafe { flush_fn(ptr, len) });
    r.unwrap();
    assert_eq!(events, flush_expected, "flush_fn {what}");
    let ((), events) = recorded(drain_fn);
    assert_eq!(events, drain_expected, "drain_fn {what}");
}

const FLAG_SETS: [MemFlags; 9] = [
    MemFlags::empty(),
    MemFlags::NODRAIN,
    MemFlags::NONTEMPORAL,
    MemFlags::NONTEMPORAL.union(MemFlags::NODRAIN),
    MemFlags::TEMPORAL,
    MemFlags::TEMPORAL.union(MemFlags::NODRAIN),
    MemFlags::WC,
    MemFlags::WB,
    MemFlags::NOFLUSH,
];

/// Whether libpmem2's dispatch picks a non-temporal variant (`x86_64/init.c`).
fn picks_nontemporal(granularity: Granularity, flags: MemFlags, len: usize) -> bool {
    if flags.contains(MemFlags::NOFLUSH) {
        return false;
    }
    match granularity {
        Granularity::Byte => flags.contains(MemFlags::NONTEMPORAL),
        _ if flags.intersects(MemFlags::WC | MemFlags::NONTEMPORAL) => true,
        _ if flags.intersects(MemFlags::WB | MemFlags::TEMPORAL) => false,
        _ => len >= persist::cpu().movnt_threshold(),
    }
}

/// Whether the copy implementation has non-temporal stores at all.
fn streams_exist() -> bool {
    matches!(
        persist::cpu().copy_isa(),
        CopyIsa::Avx512f | CopyIsa::Avx | CopyIsa::Sse2
    )
}

/// Checks what a copy of `len` bytes to `dest` with `flags` covered.
fn check_copy(map: &Mapping, what: &str, dest: usize, len: usize, flags: MemFlags, events: &[Event]) {
    let g = map.store_granularity();
    let what = format!(
        "{what} {g:?} dest {:#x} len {len} flags {flags:?}",
        dest - map.address() as usize
    );
    let nt = picks_nontemporal(g, flags, len);
    let drains = !flags.intersects(MemFlags::NODRAIN | MemFlags::NOFLUSH);
    let flush_instruction = persist::flush_instruction();
    let mut flushed = Vec::new();
    let mut streamed = Vec::new();
    let mut msyncs = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match *e {
            Event::Flush { instruction, addr } => {
                assert_eq!(instruction, flush_instruction, "{what}: {e:?}");
                flushed.push(addr & !(LINE - 1));
            }
            Event::Stream { addr, len: n } => {
                assert!(
                    addr >= dest && addr + n <= dest + len,
                    "{what}: {e:?} outside the destination"
                );
                streamed.push((addr, n));
            }
            Event::Msync { .. } => msyncs.push(i),
            Event::Fence => {}
        }
    }
    if flags.contains(MemFlags::NOFLUSH) || len == 0 && g != Granularity::Page {
        assert_eq!(events, [], "{what}: nothing to flush");
        return;
    }
    assert!(
        (nt && streams_exist()) || streamed.is_empty(),
        "{what}: streamed {streamed:?}"
    );
    match g {
        Granularity::Byte => {
            assert_eq!(flushed, [], "{what}: BYTE flushes nothing");
            assert_eq!(msyncs, [], "{what}: BYTE makes no msync");
        }
        Granularity::CacheLine | Granularity::Page => {
            // Each line of the destination once: flushed, or written with non-temporal stores.
            let expected = lines_of(dest, len);
            let flushed_set: BTreeSet<usize> = flushed.iter().copied().collect();
            assert_eq!(
                flushed_set.len(),
                flushed.len(),
                "{what}: a line flushed twice: {flushed:?}"
            );
            let mut covered = flushed_set.clone();
            for &(addr, n) in &streamed {
                covered.extend(lines_of(addr, n));
            }
            assert_eq!(
                covered.into_iter().collect::<Vec<_>>(),
                expected,
                "{what}: lines flushed or streamed"
            );
            if !nt || !streams_exist() {
                let in_order: Vec<usize> = flushed_set.iter().copied().collect();
                assert_eq!(in_order, expected, "{what}: a temporal copy flushes every line");
            }
            // Every byte of the destination is in a flushed line or was streamed.
            let mut pieces: Vec<(usize, usize)> = flushed.iter().map(|&l| (l, l + LINE)).collect();
            pieces.extend(streamed.iter().map(|&(a, n)| (a, a + n)));
            pieces.sort_unstable();
            let mut at = dest;
            for (a, b) in pieces {
                assert!(a <= at, "{what}: bytes {at:#x}..{a:#x} neither flushed nor streamed");
                at = at.max(b);
            }
            assert!(
                at >= dest + len,
                "{what}: bytes from {at:#x} neither flushed nor streamed"
            );
        }
    }
    check_wc_barriers(&what, events);
    let last_store = events
        .iter()
        .rposition(|e| matches!(e, Event::Flush { .. } | Event::Stream { .. }));
    let fence_after = |from: Option<usize>| {
        events[from.map_or(0, |i| i + 1)..]
            .iter()
            .position(|e| *e == Event::Fence)
            .map(|p| p + from.map_or(0, |i| i + 1))
    };
    if g == Granularity::Page {
        // NODRAIN is ignored: a fence after the last store, then the msync of the pages.
        let fence = fence_after(last_store).unwrap_or_else(|| panic!("{what}: no fence before msync: {events:?}"));
        assert_eq!(msyncs.len(), usize::from(len != 0), "{what}: {events:?}");
        if let Some(&m) = msyncs.first() {
            assert!(m > fence, "{what}: msync before the fence: {events:?}");
            assert_eq!(&events[m..], msync_of(map, dest, len), "{what}: msync arguments");
        }
    } else if drains {
        assert_eq!(
            events.last(),
            Some(&Event::Fence),
            "{what}: the drain's fence comes last"
        );
    } else if !nt {
        assert!(
            !events.contains(&Event::Fence),
            "{what}: NODRAIN temporal copy fenced: {events:?}"
        );
    } else if g == Granularity::Byte && !streamed.is_empty() {
        // No drain follows and nothing is flushed: the copy fences its own non-temporal
        // stores (libpmem2's barrier_after_ntstores in the eADR variants).
        let last_stream = events.iter().rposition(|e| matches!(e, Event::Stream { .. }));
        assert!(
            fence_after(last_stream).is_some(),
            "{what}: non-temporal stores without a fence: {events:?}"
        );
    }
}

/// The write-combining workaround (SSE2 and AVX loops, `PMEM_WC_WORKAROUND=1` or an Intel
/// CPU): a fence after every 768 streamed bytes (12 lines, libpmem2's `PERF_BARRIER_SIZE`)
/// while more follow; otherwise no fence between two non-temporal stores.
fn check_wc_barriers(what: &str, events: &[Event]) {
    let cpu = persist::cpu();
    let wc = cpu.wc_workaround() && matches!(cpu.copy_isa(), CopyIsa::Avx | CopyIsa::Sse2);
    let (Some(first), Some(last)) = (
        events.iter().position(|e| matches!(e, Event::Stream { .. })),
        events.iter().rposition(|e| matches!(e, Event::Stream { .. })),
    ) else {
        return;
    };
    let mut since = 0;
    let mut total = 0;
    let mut barriers = 0;
    for e in &events[first..=last] {
        match *e {
            Event::Stream { len, .. } => {
                since += len;
                total += len;
            }
            Event::Fence => {
                assert!(wc, "{what}: a fence between non-temporal stores: {events:?}");
                assert!(
                    since >= 12 * LINE,
                    "{what}: a write-combining barrier after {since} bytes: {events:?}"
                );
                barriers += 1;
                since = 0;
            }
            _ => {}
        }
    }
    if wc && total >= 4 * 12 * LINE {
        assert!(barriers > 0, "{what}: {total} bytes streamed without a barrier");
    }
}

/// Every copy of the matrix at `[offset, offset + len)`.
fn check_copies(map: &Mapping, offset: usize, len: usize, data: &[u8]) {
    let base = map.address() as usize;
    let dest = base + offset;
    for flags in FLAG_SETS {
        let (r, events) = recorded(|| map.memcpy(offset, &data[..len], flags));
        r.unwrap();
        check_copy(map, "memcpy", dest, len, flags, &events);
        let mut back = vec![0; len];
        map.read(offset, &mut back).unwrap();
        assert!(back == data[..len], "memcpy {offset} {len}: the bytes");

        let (r, events) = recorded(|| map.memset(offset, 0xa5, len, flags));
        r.unwrap();
        check_copy(map, "memset", dest, len, flags, &events);

        // From the other half of the mapping, and overlapping (the destination 7 bytes into
        // the source, so the copy runs backwards).
        let other = if offset >= MAP_SIZE / 2 { 0 } else { MAP_SIZE - len };
        if other + len <= offset || offset + len <= other {
            let (r, events) = recorded(|| map.memmove_within(offset, other, len, flags));
            r.unwrap();
            check_copy(map, "memmove_within", dest, len, flags, &events);
        }
        if offset >= 7 && len > 7 {
            let (r, events) = recorded(|| map.memmove_within(offset, offset - 7, len, flags));
            r.unwrap();
            check_copy(map, "memmove_within (overlapping)", dest, len, flags, &events);
        }
        let memcpy = map.memcpy_fn();
        // SAFETY: the destination is inside the live, writable mapping; `data` is readable.
        let (r, events) = recorded(|| unsafe { memcpy(dest as *mut u8, data.as_ptr(), len, flags) });
        r.unwrap();
        check_copy(map, "memcpy_fn", dest, len, flags, &events);
    }
}

fn matrix(map: &Mapping) {
    let data: Vec<u8> = (0..LARGE).map(|i| (i * 7 + 3) as u8).collect();
    let ranges = ranges();
    assert!(ranges.len() > 70, "{} ranges", ranges.len());
    for &(offset, len) in &ranges {
        check_persist(map, offset, len);
        check_copies(map, offset, len, &data);
    }
}

#[test]
fn page_persist_and_copies_cover_exactly_their_pages() {
    let t = target(Sharing::Shared, Granularity::Page);
    matrix(&t.map);
}

#[test]
fn byte_persist_and_copies_only_fence() {
    let t = target(Sharing::Private, Granularity::Byte);
    matrix(&t.map);
}

/// The CACHE_LINE matrix in a child with `env` (plus the forced granularity).
fn cache_line_case(name: &str, env: &[(&str, &str)], check: impl Fn()) {
    let mut env = env.to_vec();
    env.push(("PMEM2_FORCE_GRANULARITY", "CACHE_LINE"));
    if in_child(name, &env) {
        check();
        let t = target(Sharing::Shared, Granularity::CacheLine);
        matrix(&t.map);
    }
}

#[test]
fn cache_line_persist_and_copies_cover_exactly_their_lines() {
    cache_line_case("cache_line_persist_and_copies_cover_exactly_their_lines", &[], || {
        inaccessible_cache_line_mappings_only_fence();
    });
}

/// A CACHE_LINE mapping without read or write access (PROT_NONE, PROT_EXEC alone): a flush
/// instruction there would fault, and nothing can have been stored through it, so persist is
/// a fence alone and flush does nothing.
fn inaccessible_cache_line_mappings_only_fence() {
    for prot in [Protection::NONE, Protection::EXEC] {
        let file = tempfile::tempfile().unwrap();
        file.set_len(MAP_SIZE as u64).unwrap();
        let mut config = Config::new();
        config
            .set_required_store_granularity(Granularity::CacheLine)
            .set_protection(prot);
        let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
        assert_eq!(map.store_granularity(), Granularity::CacheLine);
        let (persist, flush, drain) = (map.persist_fn(), map.flush_fn(), map.drain_fn());
        for (offset, len) in [(0, MAP_SIZE), (100, 5000), (MAP_SIZE - 1, 1)] {
            // SAFETY: the range is inside the live mapping; these functions touch no memory.
            let ptr = unsafe { map.address().add(offset) };
            let (r, events) = recorded(|| unsafe { persist(ptr, len) });
            r.unwrap();
            assert_eq!(events, [Event::Fence], "{prot:?} persist_fn");
            // SAFETY: as above.
            let (r, events) = recorded(|| unsafe { flush(ptr, len) });
            r.unwrap();
            assert_eq!(events, [], "{prot:?} flush_fn");
            let ((), events) = recorded(drain);
            assert_eq!(events, [Event::Fence], "{prot:?} drain_fn");
            let (r, events) = recorded(|| map.persist(offset, len));
            r.unwrap();
            assert_eq!(events, [Event::Fence], "{prot:?} persist");
            let (r, events) = recorded(|| map.flush(offset, len));
            r.unwrap();
            assert_eq!(events, [], "{prot:?} flush");
        }
    }
}

/// CLFLUSHOPT where the CPU has it (else the next choice, CLFLUSH).
#[test]
#[cfg(target_arch = "x86_64")]
fn cache_line_coverage_without_clwb() {
    cache_line_case("cache_line_coverage_without_clwb", &[("PMEM_NO_CLWB", "1")], || {
        let want = if common::leaf7_ebx(23) {
            FlushInstruction::Clflushopt
        } else {
            FlushInstruction::Clflush
        };
        assert_eq!(persist::flush_instruction(), want);
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn cache_line_coverage_with_clflush() {
    cache_line_case(
        "cache_line_coverage_with_clflush",
        &[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")],
        || assert_eq!(persist::flush_instruction(), FlushInstruction::Clflush),
    );
}

/// Each copy implementation this CPU can run: AVX, SSE2 (with the write-combining fences
/// forced on), the generic 8-byte stores and libc.
#[test]
#[cfg(target_arch = "x86_64")]
fn cache_line_coverage_of_every_copy_implementation() {
    type Env = &'static [(&'static str, &'static str)];
    let cases: [(&str, Env, CopyIsa); 4] = [
        (
            "avx",
            &[("PMEM_AVX512F", "0"), ("PMEM_WC_WORKAROUND", "1")],
            CopyIsa::Avx,
        ),
        (
            "sse2",
            &[("PMEM_AVX512F", "0"), ("PMEM_AVX", "0"), ("PMEM_WC_WORKAROUND", "1")],
            CopyIsa::Sse2,
        ),
        ("generic", &[("PMEM_NO_MOVNT", "1")], CopyIsa::Generic),
        (
            "libc",
            &[("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "1")],
            CopyIsa::Libc,
        ),
    ];
    const NAME: &str = "cache_line_coverage_of_every_copy_implementation";
    let which = common::child_action();
    for (isa, env, want) in cases {
        if want == CopyIsa::Avx && !std::is_x86_feature_detected!("avx") {
            continue;
        }
        let action = format!("{NAME}:{isa}");
        if which.as_deref() == Some(action.as_str()) {
            assert_eq!(persist::cpu().copy_isa(), want);
            if matches!(want, CopyIsa::Avx | CopyIsa::Sse2) {
                assert!(persist::cpu().wc_workaround());
            }
            let t = target(Sharing::Shared, Granularity::CacheLine);
            matrix(&t.map);
            return;
        }
        if which.is_none() {
            let mut env = env.to_vec();
            env.push(("PMEM2_FORCE_GRANULARITY", "CACHE_LINE"));
            common::assert_child_ok(&common::run_child(NAME, &action, &env));
        }
    }
}

/// The log belongs to the recording thread, and stops with `take_events`.
#[test]
fn the_event_log_is_per_thread_and_stops() {
    let t = target(Sharing::Shared, Granularity::Page);
    counters::record();
    std::thread::scope(|s| {
        s.spawn(|| t.map.persist(0, 10).unwrap());
    });
    assert_eq!(counters::take_events(), [], "another thread's msync");
    t.map.persist(0, 10).unwrap();
    assert_eq!(counters::take_events(), [], "not recording any more");
    let ((), events) = recorded(|| t.map.persist(4096, 1).unwrap());
    assert_eq!(events, msync_of(&t.map, t.map.address() as usize + 4096, 1));
}
