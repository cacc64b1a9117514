//! Mapping files and anonymous memory: libpmem2's pmem2_map and pmem2_integration cases,
//! and the seed form (`pmem2::map` with `Config::set_fd`).

mod common;

use common::{holey_tempfile, page, GIB, KIB, MIB};
use pmem2::{Config, ErrorKind, Granularity, Mapping, Protection, Sharing, Source};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, IntoRawFd};

/// libpmem2's `ut_pmem2_prepare_config`: offset and length, granularity PAGE.
fn page_config(offset: u64, length: u64) -> Config {
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    config.set_offset(offset).unwrap();
    config.set_length(length);
    config
}

fn map_err(config: &Config, file: &File) -> pmem2::Error {
    Mapping::new(config, &Source::from_fd(file).unwrap()).unwrap_err()
}

fn read_only(file: &File) -> File {
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap()
}

// pmem2_map TEST0: an O_RDWR file maps whole with PAGE granularity on the page cache.
#[test]
fn read_write_file_maps_whole() {
    let file = holey_tempfile(16 * MIB);
    let map = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    assert_eq!(map.size(), 16 * MIB as usize);
    assert_eq!(map.store_granularity(), Granularity::Page);
    assert!(!map.map_sync(), "this machine has no DAX");
    assert_eq!(map.sharing(), Sharing::Shared);
    assert_eq!(map.protection(), Protection::READ | Protection::WRITE);
    assert_eq!(map.file_type(), Some(pmem2::FileType::Regular));
    map.write(16 * MIB as usize - 3, b"end").unwrap();
    map.unmap().unwrap();
}

// pmem2_map TEST2: the default protection is READ|WRITE, which an O_RDONLY fd cannot share.
#[test]
fn read_only_fd_with_default_protection_is_no_access() {
    let file = holey_tempfile(16 * MIB);
    let err = map_err(&page_config(0, 0), &read_only(&file));
    assert_eq!(err.kind(), ErrorKind::NoAccess);
    assert_eq!(err.code(), -100032);
}

// pmem2_map TEST4: valid ranges report the mapped length as the size.
#[test]
fn valid_ranges_map_the_requested_length() {
    let file = holey_tempfile(16 * MIB);
    let size = 16 * MIB;
    let size2 = (size / 2) & !(page() - 1);
    let source = Source::from_fd(&file).unwrap();
    for (offset, length, expected) in [(0, 0, size), (0, size, size), (0, size2, size2), (page(), size2, size2)] {
        let map = Mapping::new(&page_config(offset, length), &source).unwrap();
        assert_eq!(map.size() as u64, expected, "offset {offset} length {length}");
    }
}

// pmem2_map TEST6: ranges past the end of the file.
#[test]
fn ranges_past_the_end_are_map_range() {
    let file = holey_tempfile(16 * MIB);
    let size2 = 8 * MIB;
    for (offset, length) in [(size2 + 4 * MIB, size2), (32 * MIB, 0)] {
        let err = map_err(&page_config(offset, length), &file);
        assert_eq!(err.code(), -100006, "offset {offset} length {length}");
        assert_eq!(err.kind(), ErrorKind::MapRange);
    }
}

// pmem2_map TEST8 (and libpmem2's order of checks: the offset before the length).
#[test]
fn unaligned_offset_is_reported_before_the_length() {
    let file = holey_tempfile(16 * MIB);
    let err = map_err(&page_config(KIB, 8 * MIB), &file);
    assert_eq!(err.kind(), ErrorKind::OffsetUnaligned);
    assert_eq!(err.code(), -100011);
    let err = map_err(&page_config(KIB, 3000), &file);
    assert_eq!(err.code(), -100011, "offset 1024 with length 3000");
}

// pmem2_map TEST10: the fd is closed between creating the source and mapping.
#[test]
fn fd_closed_after_creating_the_source_is_invalid_file_handle() {
    let file = holey_tempfile(16 * MIB);
    // A high fd number, so no other test thread gets it back while it is closed.
    let fd = dup_high(&file);
    let source = Source::from_raw_fd(fd).unwrap();
    close(fd);
    let err = Mapping::new(&page_config(0, 8 * MIB), &source).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFileHandle);
    assert_eq!(err.code(), -100004);
    assert_eq!(source.size().unwrap_err().code(), -100004);
    assert_eq!(source.alignment().unwrap(), pmem2::page_size(), "alignment needs no fd");
}

// pmem2 goes further than libpmem2 here: a closed fd number reused for another file is
// refused rather than silently mapping the other file.
#[test]
fn fd_number_reused_for_another_file_is_invalid_file_handle() {
    let first = holey_tempfile(16 * MIB);
    let second = holey_tempfile(4 * MIB);
    let fd = dup_high(&first);
    let source = Source::from_raw_fd(fd).unwrap();
    // SAFETY: dup2 onto `fd`, which this test owns.
    assert_eq!(unsafe { libc::dup2(second.as_raw_fd(), fd) }, fd);
    let err = Mapping::new(&page_config(0, 0), &source).unwrap_err();
    assert_eq!(err.code(), -100004);
    // Nor does the source report the other file's size.
    assert_eq!(source.size().unwrap_err().code(), -100004);
    close(fd);
}

fn dup_high(file: &File) -> i32 {
    common::dup_high(file).into_raw_fd()
}

fn close(fd: i32) {
    // SAFETY: the caller owns `fd`.
    assert_eq!(unsafe { libc::close(fd) }, 0);
}

// pmem2_map TEST21: a length that is not a page multiple.
#[test]
fn unaligned_length_is_length_unaligned() {
    let file = holey_tempfile(3 * KIB);
    let err = map_err(&page_config(0, 3 * KIB), &file);
    assert_eq!(err.kind(), ErrorKind::LengthUnaligned);
    assert_eq!(err.code(), -100015);
}

// pmem2_map TEST22, and length 0 over an odd-sized file maps exactly the file size.
#[test]
fn odd_sized_files_map_their_exact_size_with_length_zero() {
    let file = holey_tempfile(16 * MIB - 1);
    let err = map_err(&page_config(0, 16 * MIB), &file);
    assert_eq!(err.code(), -100006, "16 MiB of a 16 MiB-1 file");
    let map = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    assert_eq!(map.size(), 16 * MIB as usize - 1);

    let small = holey_tempfile(5000);
    let map = Mapping::new(&page_config(0, 0), &Source::from_fd(&small).unwrap()).unwrap();
    assert_eq!(map.size(), 5000);
    assert_eq!(
        map.write(4999, b"xy").unwrap_err().kind(),
        ErrorKind::LengthOutOfRange,
        "writes stop at the mapped size"
    );
}

// pmem2_map TEST23, and GRANULARITY_NOT_SET comes first even for an empty file.
#[test]
fn empty_file_is_source_empty() {
    let file = holey_tempfile(0);
    assert_eq!(map_err(&page_config(0, 0), &file).code(), -100018);
    assert_eq!(map_err(&page_config(0, 0), &file).kind(), ErrorKind::SourceEmpty);
    let err = Mapping::new(&Config::new(), &Source::from_fd(&file).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GranularityNotSet);
    assert_eq!(err.code(), -100008);
}

// The documented difference from libpmem2 (which returns mmap's -EINVAL).
#[test]
fn offset_equal_to_the_file_size_with_length_zero_is_map_range() {
    let file = holey_tempfile(16 * MIB);
    let err = map_err(&page_config(16 * MIB, 0), &file);
    assert_eq!(err.code(), -100006);
}

// pmem2_map TEST24: two shared mappings of one file see each other's stores.
#[test]
fn shared_mappings_see_each_other() {
    let file = holey_tempfile(16 * MIB);
    let source = Source::from_fd(&file).unwrap();
    let map1 = Mapping::new(&page_config(0, 0), &source).unwrap();
    let map2 = Mapping::new(&page_config(0, 0), &source).unwrap();
    assert_ne!(map1.address(), map2.address());
    map2.write(4096, b"shared").unwrap();
    let mut buf = [0u8; 6];
    map1.read(4096, &mut buf).unwrap();
    assert_eq!(&buf, b"shared");
}

// pmem2_map TEST25/26: a private mapping's stores stay private, also through a reopened fd.
#[test]
fn private_mapping_stores_are_invisible_to_shared_ones() {
    let file = holey_tempfile(16 * MIB);
    let reopened = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .unwrap();
    let shared = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    for private_fd in [&file, &reopened] {
        let mut config = page_config(0, 0);
        config.set_sharing(Sharing::Private);
        let private = Mapping::new(&config, &Source::from_fd(private_fd).unwrap()).unwrap();
        assert_eq!(private.sharing(), Sharing::Private);
        private.write(0, b"private").unwrap();
        let (mut seen_private, mut seen_shared) = ([0u8; 7], [0u8; 7]);
        private.read(0, &mut seen_private).unwrap();
        shared.read(0, &mut seen_shared).unwrap();
        assert_eq!(&seen_private, b"private");
        assert_eq!(seen_shared, [0; 7]);
    }
}

// pmem2_map TEST27 and pmem2_integration TEST22: O_RDONLY + PRIVATE + READ|WRITE is writable,
// and the file keeps its content.
#[test]
fn read_only_fd_mapped_private_is_writable_and_leaves_the_file_alone() {
    let file = holey_tempfile(16 * MIB);
    std::os::unix::fs::FileExt::write_all_at(&file, b"original", 0).unwrap();
    let ro = read_only(&file);
    let mut config = page_config(0, 0);
    config.set_sharing(Sharing::Private);
    let map = Mapping::new(&config, &Source::from_fd(&ro).unwrap()).unwrap();
    assert_eq!(map.store_granularity(), Granularity::Byte, "private mappings are BYTE");
    map.write(0, b"modified").unwrap();
    map.persist(0, 8).unwrap();
    drop(map);
    let map = Mapping::new(&config, &Source::from_fd(&ro).unwrap()).unwrap();
    let mut buf = [0u8; 8];
    map.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"original");
}

// pmem2_map TEST29/30: mappings are placed for huge pages.
#[test]
fn mappings_are_aligned_for_huge_pages() {
    for (size, align) in [(16 * MIB, 2 * MIB), (16 * KIB, page())] {
        let file = holey_tempfile(size);
        let map = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
        assert_eq!(
            map.address() as u64 % align,
            0,
            "{size}-byte mapping at {:p}",
            map.address()
        );
    }
}

// pmem2_integration TEST0/TEST1: a config can be reused, also with another source.
#[test]
fn config_is_reusable_across_mappings_and_sources() {
    let (a, b) = (holey_tempfile(16 * MIB), holey_tempfile(4 * MIB));
    let config = page_config(0, 0);
    let source_a = Source::from_fd(&a).unwrap();
    let m1 = Mapping::new(&config, &source_a).unwrap();
    let m2 = Mapping::new(&config, &source_a).unwrap();
    let m3 = Mapping::new(&config, &Source::from_fd(&b).unwrap()).unwrap();
    assert_eq!((m1.size(), m2.size(), m3.size()), (16 << 20, 16 << 20, 4 << 20));
}

// pmem2_integration TEST4: every aligned window of a 1 MiB file shows the same bytes as the
// whole mapping.
#[test]
fn every_aligned_window_matches_the_whole_mapping() {
    let file = holey_tempfile(MIB);
    let source = Source::from_fd(&file).unwrap();
    let base = Mapping::new(&page_config(0, 0), &source).unwrap();
    let pattern: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    base.write(0, &pattern).unwrap();
    let step = page() as usize * 16;
    for offset in (0..MIB as usize).step_by(step) {
        let window = Mapping::new(&page_config(offset as u64, MIB - offset as u64), &source).unwrap();
        let mut got = vec![0u8; window.size()];
        window.read(0, &mut got).unwrap();
        assert_eq!(got, pattern[offset..], "window at {offset}");
    }
}

// pmem2_integration TEST14-21: lengths and offsets one byte off alignment.
#[test]
fn lengths_and_offsets_one_byte_off_alignment() {
    let file = holey_tempfile(16 * MIB);
    let size = 16 * MIB;
    assert_eq!(map_err(&page_config(0, size - 1), &file).code(), -100015);
    assert_eq!(map_err(&page_config(page() - 1, 0), &file).code(), -100011);
    let source = Source::from_fd(&file).unwrap();
    assert_eq!(
        Mapping::new(&page_config(0, size), &source).unwrap().size() as u64,
        size
    );
    let map = Mapping::new(&page_config(page(), size / 2), &source).unwrap();
    assert_eq!(map.size() as u64, size / 2);
}

// pmem2_integration TEST28-32: a 1 GiB anonymous source.
#[test]
fn anonymous_source_of_one_gib() {
    let source = Source::from_anon(GIB as usize);
    assert!(source.alignment().unwrap() >= pmem2::page_size());
    assert_eq!(source.size().unwrap(), GIB);
    assert_eq!(source.fd().unwrap_err().code(), -100035, "FILE_DESCRIPTOR_NOT_SET");
    let align = source.alignment().unwrap() as u64;
    for sharing in [Sharing::Private, Sharing::Shared] {
        let mut config = page_config(align, MIB);
        config.set_sharing(sharing);
        let map = Mapping::new(&config, &source).unwrap();
        assert_eq!(map.size() as u64, MIB);
        assert_eq!(map.store_granularity(), Granularity::Byte, "anonymous memory is BYTE");
        assert_eq!(map.file_type(), None);
        let mut zero = [1u8; 16];
        map.read(0, &mut zero).unwrap();
        assert_eq!(zero, [0; 16], "anonymous memory starts zeroed");
        map.write(100, b"anon").unwrap();
        map.persist(256, MIB as usize - 256).unwrap(); // TEST38
    }
    let map = Mapping::new(&page_config(0, 0), &source).unwrap();
    assert_eq!(map.size() as u64, GIB);
    let err = Mapping::new(&page_config(align, KIB), &source).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LengthUnaligned);
}

#[test]
fn anonymous_source_of_size_zero_is_source_empty() {
    let err = Mapping::new(&page_config(0, 0), &Source::from_anon(0)).unwrap_err();
    assert_eq!(err.code(), -100018);
}

// The anonymous offset is ignored for placement but still counted in the range check.
#[test]
fn anonymous_offset_counts_in_the_range_check() {
    let source = Source::from_anon(MIB as usize);
    let err = Mapping::new(&page_config(MIB, page()), &source).unwrap_err();
    assert_eq!(err.code(), -100006);
    let map = Mapping::new(&page_config(MIB - page(), page()), &source).unwrap();
    assert_eq!(map.size() as u64, page());
}

// pmem2_integration TEST28-32 with length 0: libpmem2 maps the whole source (the effective
// offset of anonymous memory is 0).
#[test]
fn anonymous_length_zero_maps_everything_whatever_the_offset() {
    let source = Source::from_anon(GIB as usize);
    let map = Mapping::new(&page_config(page(), 0), &source).unwrap();
    assert_eq!(map.size() as u64, GIB);
    let map = Mapping::new(&page_config(GIB, 0), &source).unwrap();
    assert_eq!(map.size() as u64, GIB);
}

#[test]
fn granularity_must_be_set() {
    let file = holey_tempfile(MIB);
    let err = Mapping::new(&Config::new(), &Source::from_fd(&file).unwrap()).unwrap_err();
    assert_eq!(err.code(), -100008);
    assert_eq!(err.name(), "PMEM2_E_GRANULARITY_NOT_SET");
}

#[test]
fn reads_and_writes_are_bounds_checked() {
    let file = holey_tempfile(MIB);
    let map = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(map.read(MIB as usize - 1, &mut buf).unwrap_err().code(), -100030);
    assert_eq!(map.write(usize::MAX, b"x").unwrap_err().code(), -100030);
    assert_eq!(map.persist(MIB as usize, 1).unwrap_err().code(), -100030);
    map.persist(MIB as usize, 0).unwrap();
}

mod seed_form {
    use super::*;

    fn seed_config(fd: i32) -> Config {
        let mut config = Config::new();
        config.set_fd(fd);
        config
    }

    #[test]
    fn without_an_fd_is_file_handle_not_set() {
        let err = pmem2::map(&Config::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FileHandleNotSet);
        assert_eq!(err.code(), -100003);
        assert_eq!(Config::new().file_size().unwrap_err().code(), -100003);
    }

    // pmem2 checks the fd when mapping, so a negative one fails there. (The API 1.0 man page
    // of pmem2_config_set_fd said a negative fd resets the config to "no fd", which would be
    // FILE_HANDLE_NOT_SET; pmem2 chose INVALID_FILE_HANDLE.)
    #[test]
    fn a_negative_fd_is_invalid_file_handle() {
        for fd in [-1, -5, i32::MIN] {
            let err = pmem2::map(&seed_config(fd)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidFileHandle, "fd {fd}");
            assert_eq!(err.code(), -100004);
        }
    }

    #[test]
    fn closed_or_write_only_fd_is_invalid_file_handle() {
        let file = holey_tempfile(MIB);
        let fd = dup_high(&file);
        close(fd);
        let err = pmem2::map(&seed_config(fd)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFileHandle);
        assert_eq!(err.code(), -100004);
        let wronly = OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .unwrap();
        let err = pmem2::map(&seed_config(wronly.as_raw_fd())).unwrap_err();
        assert_eq!(err.code(), -100004);
    }

    #[test]
    fn overflow_or_past_eof_is_map_range() {
        let file = holey_tempfile(MIB);
        let mut config = seed_config(file.as_raw_fd());
        config.set_offset(page()).unwrap().set_length(u64::MAX - page() + 1);
        assert_eq!(pmem2::map(&config).unwrap_err().code(), -100006, "overflow");
        config.set_offset(0).unwrap().set_length(MIB + page());
        assert_eq!(pmem2::map(&config).unwrap_err().code(), -100006, "past EOF");
        config.set_offset(2 * MIB).unwrap().set_length(0);
        assert_eq!(pmem2::map(&config).unwrap_err().kind(), ErrorKind::MapRange);
    }

    #[test]
    fn unset_granularity_means_page_and_size_is_the_file_size() {
        let file = holey_tempfile(MIB + 5);
        let config = seed_config(file.as_raw_fd());
        assert_eq!(config.file_size().unwrap(), MIB + 5);
        let map = pmem2::map(&config).unwrap();
        assert_eq!(map.store_granularity(), Granularity::Page);
        assert_eq!(map.size() as u64, MIB + 5);
        map.write(0, b"seed").unwrap();
    }

    #[test]
    fn read_only_fd_maps_read_only() {
        let file = holey_tempfile(MIB);
        std::os::unix::fs::FileExt::write_all_at(&file, b"visible", 0).unwrap();
        let ro = read_only(&file);
        let map = pmem2::map(&seed_config(ro.as_raw_fd())).unwrap();
        assert_eq!(map.protection(), Protection::READ);
        let mut buf = [0u8; 7];
        map.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"visible");
        assert_eq!(map.write(0, b"x").unwrap_err().kind(), ErrorKind::NoAccess);
        let entries = common::maps_in(map.address(), map.size());
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].perms, "r--s");
        assert_eq!(entries[0].inode, common::inode(&file));
    }

    #[test]
    fn explicit_protection_overrides_the_fd_mode() {
        let file = holey_tempfile(MIB);
        let ro = read_only(&file);
        let mut config = seed_config(ro.as_raw_fd());
        config.set_protection(Protection::READ | Protection::WRITE);
        // The seed form keeps mmap's EACCES as -EACCES.
        assert_eq!(pmem2::map(&config).unwrap_err().code(), -libc::EACCES);
    }

    #[test]
    fn append_only_file_is_eacces_not_no_access() {
        let dir = tempfile::tempdir().unwrap();
        let path = common::holey_file(dir.path(), "log", MIB);
        let Some(guard) = common::append_only_for("append_only_file_is_eacces_not_no_access", &path) else {
            return;
        };
        let file = common::open(&path, libc::O_RDWR | libc::O_APPEND).unwrap();
        let err = pmem2::map(&seed_config(file.as_raw_fd())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Os(libc::EACCES));
        assert_eq!(err.code(), -13);
        // The modern form turns the same EACCES into NO_ACCESS.
        let err = Mapping::new(&page_config(0, 0), &Source::from_fd(&file).unwrap()).unwrap_err();
        assert_eq!(err.code(), -100032);
        drop(guard);
    }
}
