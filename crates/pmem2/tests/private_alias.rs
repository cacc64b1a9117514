//! `Mapping::private_alias` and `map_file_with_private_alias`: a copy-on-write view of a
//! read-only mapping that a stray store cannot hurt. Truth comes from the file itself (plain
//! `pread`/`pwrite`) and /proc/self/maps.

mod common;

use common::{inode, maps_in};
use pmem2::{map_file_with_private_alias, Config, ErrorKind, FileOptions, Granularity, Mapping, Protection, Source};
use std::fs::File;
use std::os::unix::fs::FileExt;

fn file_with(pages: usize) -> File {
    let file = tempfile::tempfile().unwrap();
    let page = pmem2::page_size();
    for i in 0..pages {
        file.write_all_at(format!("page {i}").as_bytes(), (i * page) as u64)
            .unwrap();
    }
    file.set_len((pages * page) as u64).unwrap();
    file
}

fn read_only(source: &Source, offset: u64, length: u64) -> Mapping {
    let mut config = Config::new();
    config
        .set_required_store_granularity(Granularity::Page)
        .set_protection(Protection::READ)
        .set_offset(offset)
        .unwrap();
    config.set_length(length);
    Mapping::new(&config, source).unwrap()
}

fn bytes(map: &Mapping, offset: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    map.read(offset, &mut out).unwrap();
    out
}

#[test]
fn stores_through_the_alias_never_reach_the_file() {
    let page = pmem2::page_size();
    let file = file_with(4);
    let source = Source::from_fd(&file).unwrap();
    let map = read_only(&source, 0, 0);
    let alias = map.private_alias(&source).unwrap();
    assert_eq!(
        (alias.size(), alias.protection()),
        (map.size(), Protection::READ | Protection::WRITE)
    );
    alias.write(page + 1, b"STRAY").unwrap();
    alias.memset(2 * page, 0xee, page, pmem2::MemFlags::empty()).unwrap();
    alias.persist(0, alias.size()).unwrap();
    drop(alias);
    let mut back = vec![0; 4 * page];
    file.read_exact_at(&mut back, 0).unwrap();
    for i in 0..4 {
        assert!(back[i * page..].starts_with(format!("page {i}").as_bytes()), "page {i}");
    }
    assert!(
        back[2 * page + 7..3 * page].iter().all(|&b| b == 0),
        "the memset never reached the file"
    );
    assert_eq!(bytes(&map, page, 6), b"page 1");
}

#[test]
fn the_alias_reads_the_files_current_contents_until_a_page_is_stored_to() {
    let page = pmem2::page_size();
    let file = file_with(3);
    let source = Source::from_fd(&file).unwrap();
    let map = read_only(&source, 0, 0);
    let alias = map.private_alias(&source).unwrap();
    let mut seen = vec![0; 6];
    alias.read(page, &mut seen).unwrap();
    assert_eq!(seen, b"page 1");
    // Copy-on-write: page 0 is stored to through the alias, page 1 is not.
    alias.write(100, b"mine").unwrap();
    file.write_all_at(b"later 0", 0).unwrap();
    file.write_all_at(b"later 1", page as u64).unwrap();
    alias.read(page, &mut seen).unwrap();
    assert_eq!(seen, b"later ", "a page not stored to follows the file");
    let mut first = vec![0; 7];
    alias.read(0, &mut first).unwrap();
    assert_eq!(first, b"page 0\0", "a page stored to keeps its private copy");
    assert_eq!(bytes(&map, 0, 7), b"later 0", "the read-only mapping follows the file");
}

#[test]
fn the_alias_maps_the_same_file_range_privately_and_is_released_with_its_mapping() {
    let page = pmem2::page_size();
    let file = file_with(8);
    let source = Source::from_fd(&file).unwrap();
    let map = read_only(&source, 2 * page as u64, 3 * page as u64);
    let alias = map.private_alias(&source).unwrap();
    assert_eq!(bytes(&alias, 0, 6), b"page 2");
    let (address, len) = (alias.address(), alias.size());
    let lines = maps_in(address, len);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].perms, "rw-p", "private, readable and writable");
    assert_eq!(lines[0].offset, 2 * page as u64, "the same file offset");
    assert_eq!(lines[0].inode, inode(&file));
    assert_ne!(map.address(), alias.address());
    alias.unmap().unwrap();
    assert!(maps_in(address, len).is_empty(), "unmapped with its Mapping");
    assert_eq!(bytes(&map, 0, 6), b"page 2", "the original is untouched");
}

#[test]
fn an_alias_needs_the_mapped_file() {
    let file = file_with(2);
    let source = Source::from_fd(&file).unwrap();
    let map = read_only(&source, 0, 0);
    let other = file_with(2);
    let err = map.private_alias(&Source::from_fd(&other).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFileHandle);
    let err = map.private_alias(&Source::from_anon(4096)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SourceTypeNotSupported);
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    let anon = Mapping::new(&config, &Source::from_anon(4096)).unwrap();
    assert_eq!(
        anon.private_alias(&source).unwrap_err().kind(),
        ErrorKind::SourceTypeNotSupported
    );
    // A file that shrank below the mapped range cannot be aliased.
    file.set_len(4096).unwrap();
    assert_eq!(map.private_alias(&source).unwrap_err().kind(), ErrorKind::MapRange);
}

#[test]
fn map_file_makes_an_alias_for_read_only_mappings_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aliased");
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    let read_only = FileOptions {
        read_only: true,
        ..Default::default()
    };
    let (map, alias) = map_file_with_private_alias(&path, &read_only).unwrap();
    let alias = alias.expect("a read-only mapping has an alias").unwrap();
    assert_eq!(map.protection(), Protection::READ);
    alias.write(0, b"x").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 8192]);
    let (_, none) = map_file_with_private_alias(&path, &FileOptions::default()).unwrap();
    assert!(none.is_none(), "a writable mapping needs none");
    // No descriptor of this process names the file (counting all of them would also count
    // what parallel test threads open and close).
    let kept: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| *target == path)
        .collect();
    assert!(kept.is_empty(), "descriptors kept: {kept:?}");
    drop((map, alias));
}
