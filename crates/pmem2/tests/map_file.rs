//! `map_file`: open, size and map by path, with windows, creation rules and errors that name
//! the path.

mod common;

use common::MIB;
use pmem2::{map_file, ErrorKind, FileOptions, Granularity, Sharing};
use std::fs;
use std::path::Path;

fn write_pattern(path: &Path, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(path, &data).unwrap();
    data
}

#[test]
fn offset_and_length_map_a_window_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("window.bin");
    let data = write_pattern(&path, 4 * MIB as usize);
    let page = pmem2::page_size();
    let options = FileOptions {
        offset: (3 * page) as u64,
        length: (5 * page) as u64,
        ..Default::default()
    };
    let map = map_file(&path, &options).unwrap();
    assert_eq!(map.size(), 5 * page);
    let mut back = vec![0u8; 5 * page];
    map.read(0, &mut back).unwrap();
    assert_eq!(back, data[3 * page..8 * page]);
    map.write(0, b"window").unwrap();
    map.persist(0, 6).unwrap();
    drop(map);
    assert_eq!(&fs::read(&path).unwrap()[3 * page..3 * page + 6], b"window");

    // Offset alone maps to the end of the file.
    let tail = map_file(
        &path,
        &FileOptions {
            offset: MIB,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(tail.size(), 3 * MIB as usize);
}

#[test]
fn windows_are_checked_as_mapping_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checked.bin");
    write_pattern(&path, MIB as usize);
    let err = |options: FileOptions| map_file(&path, &options).unwrap_err().kind();
    assert_eq!(
        err(FileOptions {
            offset: 100,
            ..Default::default()
        }),
        ErrorKind::OffsetUnaligned
    );
    assert_eq!(
        err(FileOptions {
            length: 100,
            ..Default::default()
        }),
        ErrorKind::LengthUnaligned
    );
    assert_eq!(
        err(FileOptions {
            offset: MIB,
            length: 4096,
            ..Default::default()
        }),
        ErrorKind::MapRange
    );
    assert_eq!(
        err(FileOptions {
            offset: !4095,
            ..Default::default()
        }),
        ErrorKind::OffsetOutOfRange
    );
    let e = map_file(
        &path,
        &FileOptions {
            offset: 100,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.path(), Some(path.as_path()));
}

#[test]
fn create_without_size_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.bin");
    let e = map_file(
        &path,
        &FileOptions {
            create: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Os(libc::EINVAL));
    assert!(e.message().contains("needs a size"), "{e}");
    assert!(!path.exists(), "no empty file left behind");
    // An existing file needs no size, with or without `create`.
    write_pattern(&path, MIB as usize);
    assert_eq!(
        map_file(
            &path,
            &FileOptions {
                create: true,
                ..Default::default()
            }
        )
        .unwrap()
        .size(),
        MIB as usize
    );
}

#[test]
fn a_file_created_for_a_mapping_that_fails_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.bin");
    // CACHE_LINE is not available on the page cache: the mapping fails after creation.
    let options = FileOptions {
        create: true,
        size: Some(MIB),
        granularity: Granularity::CacheLine,
        ..Default::default()
    };
    let e = map_file(&path, &options).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::GranularityNotSupported);
    assert!(!path.exists(), "the file this call created is removed");
    // A file that existed before is never removed.
    write_pattern(&path, MIB as usize);
    assert!(map_file(&path, &options).is_err());
    assert!(path.exists());
}

#[test]
fn private_mappings_open_the_file_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("append-only.bin");
    let data = write_pattern(&path, MIB as usize);
    // An append-only file refuses O_RDWR (even to root) but opens O_RDONLY.
    let Some(guard) = common::append_only_for("private_mappings_open_the_file_read_only", &path) else {
        return;
    };
    let shared = map_file(&path, &FileOptions::default()).unwrap_err();
    assert_eq!(
        (shared.kind(), shared.syscall()),
        (ErrorKind::Os(libc::EPERM), Some("open"))
    );
    let private = FileOptions {
        sharing: Sharing::Private,
        ..Default::default()
    };
    let map = map_file(&path, &private).unwrap();
    map.write(0, b"private").unwrap(); // copy-on-write: never reaches the file
    let read_only = map_file(
        &path,
        &FileOptions {
            read_only: true,
            ..private
        },
    )
    .unwrap();
    let mut back = [0u8; 7];
    read_only.read(0, &mut back).unwrap();
    assert_eq!(back, data[..7]);
    drop(guard);
    assert_eq!(fs::read(&path).unwrap(), data);
}

#[test]
fn errors_name_the_path_and_the_system_call() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.bin");
    let e = map_file(&missing, &FileOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Os(libc::ENOENT));
    assert_eq!((e.path(), e.syscall()), (Some(missing.as_path()), Some("open")));
    // A directory opens read-only (private mapping) and is then refused by type: the message
    // names the path, not the fd pmem2 opened internally.
    let e = map_file(
        dir.path(),
        &FileOptions {
            sharing: Sharing::Private,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidFileType);
    assert!(e.message().contains(&dir.path().display().to_string()), "{e}");
    assert!(!e.message().contains("fd "), "{e}");
    let e = map_file(dir.path(), &FileOptions::default()).unwrap_err();
    assert_eq!((e.kind(), e.syscall()), (ErrorKind::Os(libc::EISDIR), Some("open")));
}
