//! Property tests of range and config validation: random granularities, offsets, lengths
//! (by alignment class: zero, aligned, unaligned, at and past the end, overflowing),
//! sharing, protection and fd access modes over real temporary files of random sizes and
//! anonymous sources, through `Mapping::new` and the seed form `pmem2::map`, compared with
//! the independent model in `tests/model`. On success the mapping's size, address alignment,
//! granularity and its `/proc/self/maps` entries (range, permissions, file and offset) must
//! be what the model says, every access must be bounds checked exactly, and unmapping must
//! remove it; on failure no mapping of the file may remain.
//!
//! `PROPTEST_CASES=N` raises the number of cases (the default keeps each property to a few
//! seconds).

mod common;
mod model;

use common::{closed_fd, dup_high, maps, maps_in};
use model::validation::{self, Access, Expected, Form, Machine, Outcome, Request, SourceSpec, PROT_READ, PROT_WRITE};
use pmem2::{Config, ErrorKind, Granularity, Mapping, Protection, Sharing, Source};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

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

fn page() -> u64 {
    pmem2::page_size() as u64
}

fn file_size() -> impl Strategy<Value = u64> {
    let page = page();
    prop_oneof![
        1 => Just(0),
        3 => (1..=24u64).prop_map(move |k| k * page),
        3 => (0..=24u64, 1..page).prop_map(move |(k, r)| k * page + r),
        1 => (1..=64u64).prop_map(|k| k * MIB),
    ]
}

fn anon_size() -> impl Strategy<Value = u64> {
    let page = page();
    prop_oneof![
        1 => Just(0),
        4 => (1..=64u64).prop_map(move |k| k * page),
        2 => (0..=24u64, 1..page).prop_map(move |(k, r)| k * page + r),
        1 => (1..=64u64).prop_map(|k| k * MIB),
        // From 2 GiB on, mappings are placed on 1 GiB boundaries; never touched.
        1 => prop_oneof![Just(2 * GIB), Just(3 * GIB)],
    ]
}

/// Offsets by class, relative to the source size.
fn offset(size: u64) -> impl Strategy<Value = u64> {
    let page = page();
    let pages = size / page;
    prop_oneof![
        4 => Just(0),
        4 => (0..=pages).prop_map(move |k| k * page),
        1 => (pages + 1..=pages + 3).prop_map(move |k| k * page),
        1 => Just(size),
        2 => (0..=pages, 1..page).prop_map(move |(k, r)| k * page + r),
        1 => Just(i64::MAX as u64 & !(page - 1)),
        1 => Just(i64::MAX as u64 + 1),
        1 => any::<u64>(),
    ]
}

/// Lengths by class, relative to the source size and the offset.
fn length(size: u64, offset: u64) -> impl Strategy<Value = u64> {
    let page = page();
    let pages = size / page;
    let rest = size.saturating_sub(offset);
    prop_oneof![
        4 => Just(0),
        3 => (1..=pages + 1).prop_map(move |k| k * page),
        2 => Just(rest),
        2 => Just(rest & !(page - 1)),
        1 => Just((rest & !(page - 1)) + page),
        2 => (0..=pages, 1..page).prop_map(move |(k, r)| k * page + r),
        1 => Just(!(page - 1)), // the largest aligned u64: overflows with any offset
        1 => any::<u64>(),
    ]
}

fn granularity() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        6 => (0..=2i64).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
    ]
}

fn sharing() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        2 => Just(None),
        4 => (0..=1i64).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
    ]
}

fn protection() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        3 => Just(None),
        6 => (0..8u32).prop_map(|bits| Some(bits << 29)),
        1 => Just(Some(2)), // the kernel's PROT_WRITE
        1 => any::<u32>().prop_map(Some),
    ]
}

fn access(form: Form) -> BoxedStrategy<Access> {
    let common = prop_oneof![
        6 => Just(Access::ReadWrite),
        4 => Just(Access::ReadOnly),
        1 => Just(Access::WriteOnly),
        1 => Just(Access::Closed),
        1 => Just(Access::ClosedAfterSource),
    ];
    match form {
        Form::Modern => common.boxed(),
        Form::Seed => prop_oneof![12 => common, 1 => Just(Access::NotSet)].boxed(),
    }
}

fn request(form: Form) -> impl Strategy<Value = Request> {
    let source = match form {
        Form::Modern => prop_oneof![
            3 => (file_size(), access(form)).prop_map(|(size, access)| SourceSpec::File { size, access }),
            1 => anon_size().prop_map(|size| SourceSpec::Anon { size }),
        ]
        .boxed(),
        Form::Seed => (file_size(), access(form))
            .prop_map(|(size, access)| SourceSpec::File { size, access })
            .boxed(),
    };
    source
        .prop_flat_map(|source| {
            let size = match source {
                SourceSpec::Anon { size } | SourceSpec::File { size, .. } => size,
            };
            (Just(source), offset(size))
        })
        .prop_flat_map(|(source, offset)| {
            let size = match source {
                SourceSpec::Anon { size } | SourceSpec::File { size, .. } => size,
            };
            (Just(source), Just(offset), length(size, offset))
        })
        .prop_flat_map(move |(source, offset, length)| {
            (granularity(), sharing(), protection()).prop_map(move |(granularity, sharing, protection)| Request {
                form,
                source,
                granularity,
                offset,
                length,
                sharing,
                protection,
            })
        })
}

/// A temporary directory and the machine facts for files in it.
struct Fixture {
    dir: tempfile::TempDir,
    machine: Machine,
    next: AtomicUsize,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        let file = File::create_new(&probe).unwrap();
        file.set_len(page()).unwrap();
        let machine = validation::machine_for(&probe, file.as_raw_fd());
        Fixture {
            dir,
            machine,
            next: AtomicUsize::new(0),
        }
    }

    fn file(&self, size: u64) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("f{}", self.next.fetch_add(1, Ordering::Relaxed)));
        File::create_new(&path).unwrap().set_len(size).unwrap();
        path
    }
}

/// The fd a request's source uses, kept open (or not) as its access says.
struct Fd {
    raw: RawFd,
    _file: Option<File>,
}

fn open_as(path: &Path, access: Access) -> Fd {
    let open = |read: bool, write: bool| OpenOptions::new().read(read).write(write).open(path).unwrap();
    let file = match access {
        Access::ReadWrite | Access::ClosedAfterSource => open(true, true),
        Access::ReadOnly => open(true, false),
        Access::WriteOnly => open(false, true),
        Access::Closed => {
            return Fd {
                raw: closed_fd(),
                _file: None,
            }
        }
        Access::NotSet => return Fd { raw: -1, _file: None },
    };
    Fd {
        raw: file.as_raw_fd(),
        _file: Some(file),
    }
}

/// Applies the config setters in the model's order, returning the first error.
fn build_config(req: &Request) -> Result<Config, ErrorKind> {
    let mut config = Config::new();
    if let Some(g) = req.granularity {
        config.set_required_store_granularity(Granularity::try_from(g).map_err(|e| e.kind())?);
    }
    config.set_offset(req.offset).map_err(|e| e.kind())?;
    config.set_length(req.length);
    if let Some(s) = req.sharing {
        config.set_sharing(Sharing::try_from(s).map_err(|e| e.kind())?);
    }
    if let Some(p) = req.protection {
        config.set_protection(Protection::from_raw(p).map_err(|e| e.kind())?);
    }
    Ok(config)
}

/// Maps as the request says; the path and inode of the file, if any, come back too.
fn map(req: &Request, fx: &Fixture) -> (Result<Mapping, ErrorKind>, Option<(PathBuf, u64)>) {
    let config = match build_config(req) {
        Ok(config) => config,
        Err(kind) => return (Err(kind), None),
    };
    match req.source {
        SourceSpec::Anon { size } => {
            let source = Source::from_anon(size as usize);
            (Mapping::new(&config, &source).map_err(|e| e.kind()), None)
        }
        SourceSpec::File { size, access } => {
            let path = fx.file(size);
            let inode = std::fs::metadata(&path).unwrap().ino();
            let fd = open_as(&path, access);
            let result = match (req.form, access) {
                (Form::Modern, Access::ClosedAfterSource) => {
                    let high = dup_high(&fd.raw_fd());
                    let source = Source::from_raw_fd(high.as_raw_fd());
                    drop(high);
                    source.and_then(|source| Mapping::new(&config, &source))
                }
                (Form::Modern, _) => Source::from_raw_fd(fd.raw).and_then(|source| Mapping::new(&config, &source)),
                (Form::Seed, Access::NotSet) => pmem2::map(&config),
                (Form::Seed, Access::ClosedAfterSource) => {
                    let high = dup_high(&fd.raw_fd());
                    let mut config = config.clone();
                    config.set_fd(high.as_raw_fd());
                    drop(high);
                    pmem2::map(&config)
                }
                (Form::Seed, _) => {
                    let mut config = config.clone();
                    config.set_fd(fd.raw);
                    pmem2::map(&config)
                }
            };
            (result.map_err(|e| e.kind()), Some((path, inode)))
        }
    }
}

impl Fd {
    fn raw_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: only called for accesses that keep the file open in `_file`.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.raw) }
    }
}

/// Every access the mapping offers, at ranges around its edges: accepted exactly when inside.
fn check_bounds(map: &Mapping, exp: &Expected) {
    let size = exp.size as usize;
    let probes = [
        (0, 0),
        (0, 1),
        (size - 1, 1),
        (size, 0),
        (size, 1),
        (size - 1, 2),
        (size / 2, size - size / 2),
        (size / 2, size - size / 2 + 1),
        (0, size),
        (0, size + 1),
        (1, usize::MAX),
        (usize::MAX, 1),
        (usize::MAX, 0),
    ];
    for (offset, len) in probes {
        let inside = offset.checked_add(len).is_some_and(|end| end <= size);
        let want = |needs: u32| -> Result<(), ErrorKind> {
            if exp.protection & needs != needs {
                Err(ErrorKind::NoAccess)
            } else if !inside {
                Err(ErrorKind::LengthOutOfRange)
            } else {
                Ok(())
            }
        };
        assert_eq!(
            map.checked_range(offset, len).is_ok(),
            inside,
            "checked_range({offset}, {len})"
        );
        let range_only = if inside {
            Ok(())
        } else {
            Err(ErrorKind::LengthOutOfRange)
        };
        assert_eq!(
            map.persist(offset, len).map_err(|e| e.kind()),
            range_only,
            "persist({offset}, {len})"
        );
        assert_eq!(
            map.flush(offset, len).map_err(|e| e.kind()),
            range_only,
            "flush({offset}, {len})"
        );
        // Buffers of bounded size only: a probe reaching past the end needs no real buffer
        // larger than a page to be refused.
        if len <= 4096 {
            let mut buf = vec![0u8; len];
            assert_eq!(
                map.read(offset, &mut buf).map_err(|e| e.kind()),
                want(PROT_READ),
                "read({offset}, {len})"
            );
            assert_eq!(
                map.write(offset, &buf).map_err(|e| e.kind()),
                want(PROT_WRITE),
                "write({offset}, {len})"
            );
        }
    }
}

/// The mapping's `/proc/self/maps` entries cover its pages exactly, with the model's
/// permissions, file and file offset.
fn check_maps(map: &Mapping, exp: &Expected, inode: Option<u64>, page: u64) {
    let addr = map.address() as usize;
    let reserved = exp.reserved(page) as usize;
    let entries = maps_in(map.address(), reserved);
    assert!(!entries.is_empty(), "no /proc/self/maps entry at {addr:#x}");
    let mut covered = addr;
    for e in &entries {
        assert!(e.start <= covered, "hole before {e:?} in {entries:?}");
        covered = covered.max(e.end);
        assert_eq!(e.perms, exp.maps_perms(), "{entries:?}");
        if let Some(inode) = inode {
            assert_eq!(e.inode, inode, "{entries:?}");
            let offset_at_addr = e.offset + (addr.max(e.start) - e.start) as u64;
            let wanted = exp.file_offset + (addr.max(e.start) - addr) as u64;
            assert_eq!(offset_at_addr, wanted, "file offset in {e:?}");
        }
    }
    assert!(
        covered >= addr + reserved,
        "{entries:?} end before {:#x}",
        addr + reserved
    );
}

/// No mapping of `inode` is left anywhere in this process.
fn no_mapping_of(inode: u64) {
    let left: Vec<_> = maps().into_iter().filter(|e| e.inode == inode).collect();
    assert!(left.is_empty(), "mapping of inode {inode} left behind: {left:?}");
}

fn check(req: &Request, fx: &Fixture) {
    let expected: Outcome = validation::predict(req, &fx.machine);
    let (actual, file) = map(req, fx);
    let inode = file.as_ref().map(|(_, inode)| *inode);
    match (actual, expected) {
        (Ok(map), Ok(exp)) => {
            assert_eq!(map.size() as u64, exp.size, "size");
            assert_eq!(
                map.address() as u64 % exp.address_alignment,
                0,
                "address {:p}",
                map.address()
            );
            assert_eq!(map.store_granularity() as u32, exp.granularity, "granularity");
            assert_eq!(map.protection().bits(), exp.protection, "protection");
            assert_eq!(map.sharing() as i64, exp.sharing, "sharing");
            assert_eq!(map.file_type().is_none(), exp.anonymous, "file type");
            check_maps(&map, &exp, inode, fx.machine.page);
            check_bounds(&map, &exp);
            let (addr, reserved) = (map.address(), exp.reserved(fx.machine.page) as usize);
            drop(map);
            if let Some(inode) = inode {
                let left: Vec<_> = maps_in(addr, reserved)
                    .into_iter()
                    .filter(|e| e.inode == inode)
                    .collect();
                assert!(left.is_empty(), "still mapped after drop: {left:?}");
            }
        }
        (Err(actual), Err(expected)) => {
            assert_eq!(actual, expected, "error kind");
            if let Some(inode) = inode {
                no_mapping_of(inode);
            }
        }
        (Ok(map), Err(expected)) => panic!("mapped {} bytes; the model expected {expected:?}", map.size()),
        (Err(actual), Ok(exp)) => panic!("failed with {actual:?}; the model expected {exp:?}"),
    }
    if let Some((path, _)) = file {
        std::fs::remove_file(path).unwrap();
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// `Mapping::new` (pmem2_map_new) over files and anonymous sources.
    #[test]
    fn modern_form_matches_the_model(req in request(Form::Modern)) {
        check(&req, &FIXTURE);
    }

    /// The seed form `pmem2::map(config)` with the fd in the config.
    #[test]
    fn seed_form_matches_the_model(req in request(Form::Seed)) {
        check(&req, &FIXTURE);
    }
}

static FIXTURE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(Fixture::new);

/// The same property where `PMEM2_FORCE_GRANULARITY` decides what shared file mappings
/// offer (read by both the crate and the model), in a child process per value.
#[test]
fn forced_granularity_matches_the_model() {
    if common::child_action().is_some() {
        let fx = Fixture::new();
        let mut runner = proptest::test_runner::TestRunner::new(cases(256));
        runner
            .run(&(request(Form::Modern), request(Form::Seed)), |(modern, seed)| {
                check(&modern, &fx);
                check(&seed, &fx);
                Ok(())
            })
            .unwrap();
        return;
    }
    for value in ["byte", "CacheLine", "PAGE", "bogus"] {
        let out = common::run_child(
            "forced_granularity_matches_the_model",
            value,
            &[("PMEM2_FORCE_GRANULARITY", value)],
        );
        common::assert_child_ok(&out);
    }
}

/// Guards the generators: every class the model distinguishes is reached.
#[test]
fn generators_reach_every_outcome() {
    {
        let fx = Fixture::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for form in [Form::Modern, Form::Seed] {
            let strategy = request(form);
            for _ in 0..4000 {
                let req = strategy.new_tree(&mut runner).unwrap().current();
                let outcome = validation::predict(&req, &fx.machine);
                seen.insert(match outcome {
                    Ok(exp) => format!("ok granularity {}", exp.granularity),
                    Err(kind) => format!("{kind:?}"),
                });
            }
        }
        for wanted in [
            "ok granularity 0",
            "ok granularity 2",
            "GranularityNotSupported",
            "OffsetOutOfRange",
            "InvalidSharingValue",
            "InvalidProtFlag",
            "FileHandleNotSet",
            "InvalidFileHandle",
            "GranularityNotSet",
            "OffsetUnaligned",
            "SourceEmpty",
            "LengthUnaligned",
            "MapRange",
            "NoAccess",
            "Os(13)",
        ] {
            assert!(seen.contains(wanted), "never generated: {wanted}; seen {seen:?}");
        }
    }
}
