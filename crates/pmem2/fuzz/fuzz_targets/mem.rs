//! An arbitrary sequence of `memcpy`, `memmove`, `memmove_within`, `memset`, `write`,
//! `read`, `persist` and the `memmove_fn`/`memset_fn` pointers on one mapping, against the
//! shadow model in `crates/pmem2/tests/model/shadow.rs` (the property test `prop_mem` runs
//! the same model): after every operation the mapping equals the shadow and the rest of its
//! last page is zero; out-of-range operations are refused and change nothing; at the end a
//! shared file read with `pread` equals the shadow and a privately mapped file is unchanged.
//!
//! The mapping is a shared file (the granularity `PMEM2_FORCE_GRANULARITY` gives, PAGE
//! without it: `scripts/fuzz` runs this target once plain and once with CACHE_LINE), a
//! private file mapping or an anonymous source (BYTE).
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::shadow::{Kind, Len, Op, Pos, Src, Target, LENGTHS};
use model::validation;
use pmem2::{Granularity, Sharing};
use std::sync::LazyLock;

/// What a shared file mapping offers in this process, as the model computes it.
static SHARED_GRANULARITY: LazyLock<Granularity> = LazyLock::new(|| {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe");
    let file = std::fs::File::create_new(&path).unwrap();
    file.set_len(4096).unwrap();
    let m = validation::machine_for(&path, file.as_raw_fd());
    let g = match (m.forced, m.file_map_sync, m.eadr) {
        (Some(forced), _, _) => forced,
        (None, false, _) => 2,
        (None, true, false) => 1,
        (None, true, true) => 0,
    };
    Granularity::try_from(i64::from(g)).unwrap()
});

fn len(u: &mut Unstructured) -> Result<Len> {
    Ok(if u.ratio(3, 4)? {
        Len::Listed(*u.choose(&LENGTHS)?)
    } else {
        Len::Any(u.arbitrary()?)
    })
}

fn pos(u: &mut Unstructured) -> Result<Pos> {
    Ok(match u.int_in_range(0..=11u8)? {
        0 | 1 => Pos::Start,
        2 | 3 => Pos::End,
        4 => Pos::Past(u.arbitrary()?),
        5 => Pos::Overflow,
        _ => Pos::Any(u.arbitrary()?),
    })
}

fn src(u: &mut Unstructured) -> Result<Src> {
    Ok(if u.ratio(2, 3)? {
        Src::Near(u.int_in_range(-300..=300)?)
    } else {
        Src::At(pos(u)?)
    })
}

fn flags(u: &mut Unstructured) -> Result<u32> {
    u.int_in_range(0..=63)
}

fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.int_in_range(0..=8u8)? {
        0 => Op::Memcpy {
            dest: pos(u)?,
            len: len(u)?,
            flags: flags(u)?,
            seed: u.arbitrary()?,
        },
        1 => Op::Memmove {
            dest: pos(u)?,
            len: len(u)?,
            flags: flags(u)?,
            seed: u.arbitrary()?,
        },
        2 => Op::Within {
            dest: pos(u)?,
            src: src(u)?,
            len: len(u)?,
            flags: flags(u)?,
        },
        3 => Op::Memset {
            dest: pos(u)?,
            len: len(u)?,
            value: u.arbitrary()?,
            flags: flags(u)?,
        },
        4 => Op::Write {
            dest: pos(u)?,
            len: len(u)?,
            seed: u.arbitrary()?,
        },
        5 => Op::Read {
            at: pos(u)?,
            len: len(u)?,
        },
        6 => Op::Persist {
            at: pos(u)?,
            len: len(u)?,
        },
        7 => Op::MemmoveFn {
            dest: pos(u)?,
            src: src(u)?,
            len: len(u)?,
            flags: flags(u)?,
        },
        _ => Op::MemsetFn {
            dest: pos(u)?,
            len: len(u)?,
            value: u.arbitrary()?,
            flags: flags(u)?,
        },
    })
}

fn setup(u: &mut Unstructured) -> Result<(Kind, usize, u8)> {
    let kind = match u.int_in_range(0..=4u8)? {
        0 | 1 => Kind::SharedFile(*SHARED_GRANULARITY),
        2 => Kind::PrivateFile,
        3 => Kind::Anonymous(Sharing::Shared),
        _ => Kind::Anonymous(Sharing::Private),
    };
    let page = pmem2::page_size();
    let size = match u.int_in_range(0..=2u8)? {
        0 => u.int_in_range(1..=20usize)? * page,
        1 => u.int_in_range(0..=20usize)? * page + u.int_in_range(1..=page - 1)?,
        _ => u.int_in_range(1..=300usize)?,
    };
    Ok((kind, size, u.arbitrary()?))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((kind, size, seed)) = setup(&mut u) else {
        return;
    };
    let mut target = Target::new(kind, size, seed);
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        match op(&mut u) {
            Ok(op) => target.apply(op),
            Err(_) => break,
        }
    }
    target.finish(kind);
});
