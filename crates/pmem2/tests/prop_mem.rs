//! Property tests of the copy functions against a shadow `Vec<u8>`: random sequences of
//! `memcpy`, `memmove`, `memmove_within`, `memset`, `write`, `read`, `persist` and the
//! `memmove_fn`/`memset_fn` pointers, at random offsets (the mapping's edges, overlapping
//! source and destination, past the end), with lengths around the copy routines' thresholds
//! (0, 1, 63, 64, 255, 256, 4095, 4096 and larger), random values and all 64 flag
//! combinations. After every operation the whole mapping equals the shadow (so no byte
//! outside the destination changed) and the bytes between the end of the mapping and the
//! end of its last page are still zero; out-of-range operations fail with
//! `PMEM2_E_LENGTH_OUT_OF_RANGE` and change nothing. After each sequence a shared file read
//! with `pread` equals the shadow, and a file mapped private is unchanged.
//!
//! One test per granularity: PAGE (a shared page-cache file), CACHE_LINE (the same, with
//! `PMEM2_FORCE_GRANULARITY=CACHE_LINE`), BYTE (a private file mapping; an anonymous source).
//! Each runs in a child process, since the environment must be set before the process maps
//! anything. `PROPTEST_CASES=N` raises the number of sequences per test.

mod common;
mod model;

use common::in_child;
use model::shadow::{Kind, Len, Op, Pos, Src, Target, LENGTHS};
use pmem2::{Granularity, Sharing};
use proptest::prelude::*;

/// `default` cases, or `PROPTEST_CASES` when set.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn len() -> impl Strategy<Value = Len> {
    prop_oneof![
        3 => (0..LENGTHS.len()).prop_map(|i| Len::Listed(LENGTHS[i])),
        1 => any::<u32>().prop_map(Len::Any),
    ]
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        2 => Just(Pos::Start),
        2 => Just(Pos::End),
        6 => any::<u32>().prop_map(Pos::Any),
        1 => any::<u32>().prop_map(Pos::Past),
        1 => Just(Pos::Overflow),
    ]
}

fn src() -> impl Strategy<Value = Src> {
    prop_oneof![
        2 => (-300i32..=300).prop_map(Src::Near),
        1 => pos().prop_map(Src::At),
    ]
}

fn flags() -> impl Strategy<Value = u32> {
    0..64u32
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (pos(), len(), flags(), any::<u8>()).prop_map(|(dest, len, flags, seed)| Op::Memcpy { dest, len, flags, seed }),
        2 => (pos(), len(), flags(), any::<u8>()).prop_map(|(dest, len, flags, seed)| Op::Memmove { dest, len, flags, seed }),
        3 => (pos(), src(), len(), flags()).prop_map(|(dest, src, len, flags)| Op::Within { dest, src, len, flags }),
        3 => (pos(), len(), any::<u8>(), flags()).prop_map(|(dest, len, value, flags)| Op::Memset { dest, len, value, flags }),
        2 => (pos(), len(), any::<u8>()).prop_map(|(dest, len, seed)| Op::Write { dest, len, seed }),
        1 => (pos(), len()).prop_map(|(at, len)| Op::Read { at, len }),
        1 => (pos(), len()).prop_map(|(at, len)| Op::Persist { at, len }),
        1 => (pos(), src(), len(), flags()).prop_map(|(dest, src, len, flags)| Op::MemmoveFn { dest, src, len, flags }),
        1 => (pos(), len(), any::<u8>(), flags()).prop_map(|(dest, len, value, flags)| Op::MemsetFn { dest, len, value, flags }),
    ]
}

/// Mapping sizes: whole pages, and odd sizes whose last page is partly beyond the end.
fn size() -> impl Strategy<Value = usize> {
    let page = pmem2::page_size();
    prop_oneof![
        2 => (1..=20usize).prop_map(move |k| k * page),
        2 => (0..=20usize, 1..page).prop_map(move |(k, r)| k * page + r),
        1 => 1..=300usize,
    ]
}

fn run(kind: Kind, default_cases: u32) {
    let strategy = (size(), any::<u8>(), prop::collection::vec(op(), 1..40));
    let mut runner = proptest::test_runner::TestRunner::new(cases(default_cases));
    runner
        .run(&strategy, |(size, seed, ops)| {
            let mut target = Target::new(kind, size, seed);
            for op in ops {
                target.apply(op);
            }
            target.finish(kind);
            Ok(())
        })
        .unwrap();
}

#[test]
fn page_granularity_shared_file_matches_the_shadow() {
    if in_child("page_granularity_shared_file_matches_the_shadow", &[]) {
        run(Kind::SharedFile(Granularity::Page), 192);
    }
}

#[test]
fn forced_cache_line_shared_file_matches_the_shadow() {
    let env = [(pmem2::FORCE_GRANULARITY_ENV, "CACHE_LINE")];
    if in_child("forced_cache_line_shared_file_matches_the_shadow", &env) {
        run(Kind::SharedFile(Granularity::CacheLine), 256);
    }
}

#[test]
fn byte_granularity_private_file_matches_the_shadow() {
    if in_child("byte_granularity_private_file_matches_the_shadow", &[]) {
        run(Kind::PrivateFile, 256);
    }
}

#[test]
fn byte_granularity_anonymous_matches_the_shadow() {
    if in_child("byte_granularity_anonymous_matches_the_shadow", &[]) {
        run(Kind::Anonymous(Sharing::Shared), 128);
        run(Kind::Anonymous(Sharing::Private), 128);
    }
}
