//! Configs: libpmem2's pmem2_config cases (TEST0-12), through the public setters.

use pmem2::{Config, ErrorKind, Granularity, Protection, Sharing};

const ALIGN: u64 = 4096;

// TEST0, and pmem2_config_new's defaults (§1.4).
#[test]
fn new_config_has_libpmem2_defaults() {
    let config = Config::new();
    assert_eq!(config.offset(), 0);
    assert_eq!(config.length(), 0, "0 maps to the end of the source");
    assert_eq!(config.required_store_granularity(), None, "granularity starts unset");
    assert_eq!(config.sharing(), Sharing::Shared);
    assert_eq!(config.protection(), None, "READ|WRITE when mapping");
    assert_eq!(config, Config::default());
}

// TEST3: the granularity can be set and set again.
#[test]
fn granularity_can_be_changed() {
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Byte);
    assert_eq!(config.required_store_granularity(), Some(Granularity::Byte));
    config.set_required_store_granularity(Granularity::Page);
    assert_eq!(config.required_store_granularity(), Some(Granularity::Page));
}

// TEST4: granularity 999 (the C enum is open; Rust's is checked on conversion).
#[test]
fn unknown_granularity_value_is_not_supported() {
    let err = Granularity::try_from(999).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GranularityNotSupported);
    assert_eq!(err.code(), -100009);
    assert_eq!(Granularity::try_from(-1).unwrap_err().code(), -100009);
    assert_eq!(Granularity::try_from(2).unwrap(), Granularity::Page);
}

// TEST5: an offset above INT64_MAX is refused and the config keeps its offset.
#[test]
fn offset_above_i64_max_is_out_of_range() {
    let mut config = Config::new();
    config.set_offset(ALIGN).unwrap();
    for offset in [i64::MAX as u64 + 1, u64::MAX] {
        let err = config.set_offset(offset).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OffsetOutOfRange);
        assert_eq!(err.code(), -100010);
        assert_eq!(err.name(), "PMEM2_E_OFFSET_OUT_OF_RANGE");
        assert_eq!(config.offset(), ALIGN, "unchanged");
    }
}

// TEST6-8: aligned offsets and lengths up to the limit are accepted (alignment is checked
// only when mapping).
#[test]
fn offsets_and_lengths_are_stored() {
    let mut config = Config::new();
    config.set_offset(ALIGN).unwrap();
    assert_eq!(config.offset(), ALIGN);
    config.set_length(ALIGN);
    assert_eq!(config.length(), ALIGN);
    let largest = (i64::MAX as u64 / ALIGN) * ALIGN;
    config.set_offset(largest).unwrap();
    assert_eq!(config.offset(), largest);
    config.set_offset(i64::MAX as u64).unwrap();
    config.set_offset(1).unwrap();
    config.set_length(u64::MAX);
    assert_eq!((config.offset(), config.length()), (1, u64::MAX));
}

// TEST9/TEST10: sharing defaults to SHARED; unknown values are refused.
#[test]
fn sharing_defaults_to_shared_and_rejects_unknown_values() {
    let mut config = Config::new();
    assert_eq!(config.sharing(), Sharing::Shared);
    config.set_sharing(Sharing::Private);
    assert_eq!(config.sharing(), Sharing::Private);
    let err = Sharing::try_from(777).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSharingValue);
    assert_eq!(err.code(), -100019);
    assert_eq!(Sharing::try_from(1).unwrap(), Sharing::Private);
}

// TEST11: every combination of READ, WRITE and EXEC, and NONE, is valid.
#[test]
fn every_protection_combination_is_valid() {
    let mut config = Config::new();
    for bits in [1 << 30, 1 << 31, 1 << 29, 0, (1 << 31) | (1 << 30) | (1 << 29)] {
        let prot = Protection::from_raw(bits).unwrap();
        config.set_protection(prot);
        assert_eq!(config.protection(), Some(prot));
        assert_eq!(prot.bits(), bits);
    }
    assert_eq!(Protection::from_raw(0).unwrap(), Protection::NONE);
}

// TEST12: the kernel's PROT_WRITE (2) is not a libpmem2 protection flag.
#[test]
fn kernel_prot_bits_are_invalid_prot_flags() {
    for bits in [libc::PROT_WRITE as u32, libc::PROT_READ as u32, 1 << 28, u32::MAX] {
        let err = Protection::from_raw(bits).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidProtFlag, "{bits:#x}");
        assert_eq!(err.code(), -100031);
    }
}

#[test]
fn setters_chain() {
    let mut config = Config::new();
    config
        .set_required_store_granularity(Granularity::CacheLine)
        .set_length(8192)
        .set_sharing(Sharing::Private)
        .set_protection(Protection::READ);
    config.set_offset(4096).unwrap().set_length(4096);
    assert_eq!(config.required_store_granularity(), Some(Granularity::CacheLine));
    assert_eq!((config.offset(), config.length()), (4096, 4096));
    assert_eq!(config.protection(), Some(Protection::READ));
}

// pmem2_perror's expected text: the message names the problem, Display adds the code name.
#[test]
fn errors_say_what_was_wrong() {
    let err = Config::new().set_offset(u64::MAX).unwrap_err();
    assert!(err.message().contains("greater than INT64_MAX"), "{}", err.message());
    assert!(err.to_string().ends_with("(PMEM2_E_OFFSET_OUT_OF_RANGE)"), "{err}");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
}

/// The seed form's fd reads back as set (the binding maps a read-only file's private alias
/// from it), and as unset before.
#[test]
fn fd_reads_back_as_set() {
    let mut config = Config::new();
    assert_eq!(config.fd(), None);
    config.set_fd(7);
    assert_eq!(config.fd(), Some(7));
}
