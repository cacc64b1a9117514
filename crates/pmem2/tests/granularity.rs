//! Store granularity: libpmem2's pmem2_granularity matrix (TEST0-13) and
//! pmem2_granularity_detection, with `PMEM2_FORCE_GRANULARITY` and a fake eADR sysfs tree.
//!
//! What this machine cannot show: it has no DAX, so MAP_SYNC always fails with EOPNOTSUPP and
//! a shared file mapping is PAGE unless forced. CACHE_LINE and BYTE from real hardware (MAP_SYNC
//! granted, with and without eADR) are only reachable through `PMEM2_FORCE_GRANULARITY`, and
//! eADR can only be shown not to matter without MAP_SYNC. libpmem2's own test mocks mmap for
//! that part; pmem2's decision table is unit-tested in src/granularity.rs.
//!
//! Both variables are read by every `Mapping::new`, so each setting runs in a child process.

mod common;

use common::{holey_tempfile, MIB};
use pmem2::{Config, ErrorKind, Granularity, Mapping, Sharing, Source, FORCE_GRANULARITY_ENV, SYSFS_ROOT_ENV};
use std::path::Path;
use Granularity::*;

fn config(required: Granularity, sharing: Sharing) -> Config {
    let mut config = Config::new();
    config.set_required_store_granularity(required).set_sharing(sharing);
    config
}

fn shared_file_granularity(required: Granularity) -> pmem2::Result<Granularity> {
    let file = holey_tempfile(MIB);
    Mapping::new(&config(required, Sharing::Shared), &Source::from_fd(&file)?).map(|m| m.store_granularity())
}

fn parse(name: &str) -> Option<Granularity> {
    match name {
        "BYTE" => Some(Byte),
        "CACHE_LINE" => Some(CacheLine),
        "PAGE" => Some(Page),
        _ => None,
    }
}

/// In a child: the 3x3 matrix of requested x available, the available granularity being
/// `$PMEM2_TEST_CHILD` (PAGE naturally, or forced).
fn check_matrix(available: Granularity) {
    for required in [Byte, CacheLine, Page] {
        let result = shared_file_granularity(required);
        if required >= available {
            assert_eq!(
                result.unwrap(),
                available,
                "required {required:?}: the map offers what is available"
            );
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::GranularityNotSupported, "required {required:?}");
            assert_eq!(err.code(), -100009);
            let reason = if available == CacheLine {
                "the platform doesn't support eADR"
            } else {
                "kernel doesn't support MAP_SYNC flag (Linux >= 4.15)"
            };
            assert!(err.message().contains(reason), "{}", err.message());
        }
    }
}

fn run(test: &str, action: &str, env: &[(&str, &str)]) {
    common::assert_child_ok(&common::run_child(test, action, env));
}

// pmem2_granularity TEST4/9/13 on this machine: no MAP_SYNC, so PAGE is all a shared file
// mapping offers.
#[test]
fn page_cache_offers_page_granularity() {
    if common::child_action().is_some() {
        check_matrix(Page);
        return;
    }
    run("page_cache_offers_page_granularity", "PAGE", &[]);
}

// pmem2_granularity TEST0-13 with the available granularity forced, and
// pmem2_granularity_detection's spellings.
#[test]
fn forced_granularity_sets_what_shared_file_mappings_offer() {
    if let Some(available) = common::child_action() {
        check_matrix(parse(&available).unwrap());
        return;
    }
    let test = "forced_granularity_sets_what_shared_file_mappings_offer";
    for (value, available) in [
        ("PAGE", "PAGE"),
        ("CACHE_LINE", "CACHE_LINE"),
        ("BYTE", "BYTE"),
        ("page", "PAGE"),
        ("cache_line", "CACHE_LINE"),
        ("byte", "BYTE"),
        ("CaCHe_Line", "CACHE_LINE"),
        ("CACHELINE", "CACHE_LINE"),
    ] {
        run(test, available, &[(FORCE_GRANULARITY_ENV, value)]);
    }
}

// Values libpmem2 ignores: empty, "0" (its own tests' "disabled"), unknown words, and
// anything longer than 10 characters.
#[test]
fn invalid_forced_values_are_ignored() {
    if common::child_action().is_some() {
        check_matrix(Page);
        return;
    }
    for value in ["", "0", "BYTES", "CACHE-LINE", "CACHE_LINE_", "PAGE      x"] {
        let out = common::run_child(
            "invalid_forced_values_are_ignored",
            "PAGE",
            &[(FORCE_GRANULARITY_ENV, value)],
        );
        common::assert_child_ok(&out);
        // One warning per process, however many mappings (the matrix maps several times).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let warnings: Vec<_> = stderr
            .lines()
            .filter(|l| l.contains("ignoring PMEM2_FORCE_GRANULARITY"))
            .collect();
        assert_eq!(warnings.len(), 1, "{value:?}: {stderr}");
        assert!(warnings[0].contains(&format!("{value:?}")), "{}", warnings[0]);
    }
    // A valid value warns nothing.
    let out = common::run_child(
        "invalid_forced_values_are_ignored",
        "PAGE",
        &[(FORCE_GRANULARITY_ENV, "page")],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("ignoring"));
}

// Private file mappings and anonymous memory are BYTE, and forcing does not change that
// (libpmem2 checks PRIVATE before the override).
#[test]
fn private_and_anonymous_mappings_are_byte_whatever_is_forced() {
    if common::child_action().is_some() {
        let file = holey_tempfile(MIB);
        let source = Source::from_fd(&file).unwrap();
        for required in [Byte, CacheLine, Page] {
            let private = Mapping::new(&config(required, Sharing::Private), &source).unwrap();
            assert_eq!(private.store_granularity(), Byte);
            for sharing in [Sharing::Shared, Sharing::Private] {
                let anon = Mapping::new(&config(required, sharing), &Source::from_anon(MIB as usize)).unwrap();
                assert_eq!(anon.store_granularity(), Byte);
            }
        }
        return;
    }
    for value in ["PAGE", "CACHE_LINE", "BYTE"] {
        run(
            "private_and_anonymous_mappings_are_byte_whatever_is_forced",
            "check",
            &[(FORCE_GRANULARITY_ENV, value)],
        );
    }
}

/// A sysfs tree with nd regions in the given persistence domains.
fn nd_regions(root: &Path, domains: &[&str]) {
    let bus = root.join("bus/nd/devices");
    std::fs::create_dir_all(&bus).unwrap();
    for (i, domain) in domains.iter().enumerate() {
        let dir = root.join(format!("devices/ndbus0/region{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("persistence_domain"), domain).unwrap();
        std::os::unix::fs::symlink(&dir, bus.join(format!("region{i}"))).unwrap();
    }
}

// pmem2_granularity's eADR fixture (region0/persistence_domain = "cpu_cache"): eADR only
// matters once MAP_SYNC succeeds, so on the page cache the answer stays PAGE and BYTE is
// refused with the MAP_SYNC reason, not granted.
#[test]
fn eadr_does_not_make_page_cache_mappings_byte() {
    if common::child_action().is_some() {
        check_matrix(Page);
        return;
    }
    for domains in [
        &["cpu_cache\n"][..],
        &["cpu_cache\n", "cpu_cache\n"],
        &["memory_controller\n"],
        &[""],
    ] {
        let tree = tempfile::tempdir().unwrap();
        nd_regions(tree.path(), domains);
        let root = tree.path().to_str().unwrap();
        run(
            "eadr_does_not_make_page_cache_mappings_byte",
            "PAGE",
            &[(SYSFS_ROOT_ENV, root)],
        );
    }
}

// The environment is read at every mapping, not once: one process sees both settings.
#[test]
fn forcing_is_read_at_each_mapping() {
    if common::child_action().is_some() {
        assert_eq!(shared_file_granularity(Page).unwrap(), Page);
        std::env::set_var(FORCE_GRANULARITY_ENV, "BYTE");
        assert_eq!(shared_file_granularity(Byte).unwrap(), Byte);
        std::env::remove_var(FORCE_GRANULARITY_ENV);
        assert_eq!(shared_file_granularity(Byte).unwrap_err().code(), -100009);
        return;
    }
    run("forcing_is_read_at_each_mapping", "check", &[]);
}
