//! Sources: libpmem2's pmem2_source (TEST0-15) and pmem2_source_size/alignment cases, and
//! device DAX through a fake sysfs tree (`PMEM2_SYSFS_ROOT`, in child processes because the
//! variable is process-wide).

mod common;

use common::{holey_tempfile, mkfifo, open, unix_socket, MIB};
use pmem2::{Config, ErrorKind, FileType, Granularity, Mapping, Sharing, Source};
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::Path;

fn reopen(file: &File, flags: libc::c_int) -> OwnedFd {
    open(Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())), flags).unwrap()
}

// TEST0 and TEST13: an O_RDWR fd is accepted and kept as given (not duplicated).
#[test]
fn read_write_fd_is_a_regular_file_source() {
    let file = holey_tempfile(MIB);
    let source = Source::from_fd(&file).unwrap();
    assert_eq!(source.fd().unwrap(), file.as_raw_fd());
    assert_eq!(source.file_type(), Some(FileType::Regular));
}

// TEST1.
#[test]
fn read_only_fd_is_accepted() {
    let file = holey_tempfile(MIB);
    let ro = reopen(&file, libc::O_RDONLY);
    assert_eq!(Source::from_fd(&ro).unwrap().size().unwrap(), MIB);
}

// TEST2 and a negative fd.
#[test]
fn closed_or_negative_fd_is_invalid_file_handle() {
    for fd in [common::closed_fd(), -1, i32::MIN] {
        let err = Source::from_raw_fd(fd).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFileHandle, "fd {fd}");
        assert_eq!(err.code(), -100004);
        // The message names the fd the caller gave.
        assert!(err.message().contains(&format!("{fd}")), "{err}");
    }
}

// TEST3.
#[test]
fn write_only_fd_is_invalid_file_handle() {
    let file = holey_tempfile(MIB);
    let wo = reopen(&file, libc::O_WRONLY);
    let err = Source::from_fd(&wo).unwrap_err();
    assert_eq!(err.code(), -100004);
    assert!(err.message().contains("O_WRONLY"), "{}", err.message());
}

// TEST11 and the other file types libpmem2 refuses.
#[test]
fn directories_fifos_sockets_and_plain_char_devices_are_invalid_file_types() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fds: Vec<(&str, OwnedFd)> = vec![
        ("directory", File::open(dir.path()).unwrap().into()),
        ("fifo", open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK).unwrap()),
        ("socket", unix_socket()),
        ("/dev/null", File::open("/dev/null").unwrap().into()),
        ("/dev/zero", File::open("/dev/zero").unwrap().into()),
    ];
    for (what, fd) in fds {
        let err = Source::from_fd(&fd).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFileType, "{what}");
        assert_eq!(err.code(), -100005, "{what}");
    }
}

// An O_PATH fd passes the checks (its access mode reads as O_RDONLY) and mmap refuses it.
#[test]
fn o_path_fd_is_accepted_and_mapping_it_is_ebadf() {
    let file = holey_tempfile(MIB);
    let path_fd = reopen(&file, libc::O_PATH);
    let source = Source::from_fd(&path_fd).unwrap();
    assert_eq!(source.size().unwrap(), MIB);
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    let err = Mapping::new(&config, &source).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Os(libc::EBADF));
    assert_eq!(err.code(), -9);
}

// TEST15.
#[test]
fn anonymous_source_has_no_fd() {
    let source = Source::from_anon(MIB as usize);
    let err = source.fd().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileDescriptorNotSet);
    assert_eq!(err.code(), -100035);
    assert_eq!(source.file_type(), None);
    assert_eq!(Source::from_anon(0).size().unwrap(), 0, "size 0 is accepted");
}

// pmem2_source_size TEST0/2/4: sizes of an empty, a 16 MiB, and an O_TMPFILE file.
#[test]
fn size_is_the_file_size() {
    assert_eq!(Source::from_fd(&holey_tempfile(0)).unwrap().size().unwrap(), 0);
    assert_eq!(
        Source::from_fd(&holey_tempfile(16 * MIB)).unwrap().size().unwrap(),
        16 << 20
    );
    let dir = tempfile::tempdir().unwrap();
    let tmp: File = open(dir.path(), libc::O_TMPFILE | libc::O_RDWR).unwrap().into();
    tmp.set_len(16 * MIB).unwrap();
    assert_eq!(Source::from_fd(&tmp).unwrap().size().unwrap(), 16 << 20);
}

// The size is read on every call, as libpmem2's fstat is.
#[test]
fn size_follows_the_file() {
    let file = holey_tempfile(MIB);
    let source = Source::from_fd(&file).unwrap();
    file.set_len(3 * MIB + 1).unwrap();
    assert_eq!(source.size().unwrap(), 3 * MIB + 1);
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    assert_eq!(Mapping::new(&config, &source).unwrap().size() as u64, 3 * MIB + 1);
}

// pmem2_source_alignment TEST0.
#[test]
fn regular_and_anonymous_alignment_is_the_page_size() {
    let page = getconf_page_size();
    assert_eq!(
        Source::from_fd(&holey_tempfile(MIB)).unwrap().alignment().unwrap(),
        page
    );
    assert_eq!(Source::from_anon(MIB as usize).alignment().unwrap(), page);
    assert_eq!(pmem2::page_size(), page);
}

fn getconf_page_size() -> usize {
    // getconf is an independent source for the page size.
    let out = std::process::Command::new("getconf").arg("PAGESIZE").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

// ---- device DAX, faked: /dev/zero (a real char device that can be mapped shared) is made to
// look like /dev/dax0.0 by a sysfs tree whose dev/char/1:5/subsystem points to a "dax" class.

/// Builds a fake sysfs tree in which char device `major:minor` is device DAX of `size` bytes
/// (the text written to `size`) with region alignment `align` (the text of `dax_region/align`).
fn fake_device_dax(root: &Path, major: u32, minor: u32, size: &str, align: &str) {
    let region = root.join("devices/platform/e820_pmem/ndbus0/region0/dax0.0");
    let dev = region.join("dax0.0");
    fs::create_dir_all(&dev).unwrap();
    fs::create_dir_all(root.join("class/dax")).unwrap();
    symlink(root.join("class/dax"), dev.join("subsystem")).unwrap();
    fs::write(dev.join("size"), size).unwrap();
    fs::create_dir_all(region.join("dax_region")).unwrap();
    fs::write(region.join("dax_region/align"), align).unwrap();
    fs::create_dir_all(root.join("dev/char")).unwrap();
    symlink(&dev, root.join(format!("dev/char/{major}:{minor}"))).unwrap();
}

fn dev_zero() -> (File, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let file = OpenOptions::new().read(true).write(true).open("/dev/zero").unwrap();
    let rdev = file.metadata().unwrap().rdev();
    (file, libc::major(rdev), libc::minor(rdev))
}

/// Runs `action` of the test `test` in a child with `PMEM2_SYSFS_ROOT` at a fake tree.
fn with_fake_sysfs(test: &str, action: &str, size: &str, align: &str) {
    let tree = tempfile::tempdir().unwrap();
    let (_, major, minor) = dev_zero();
    fake_device_dax(tree.path(), major, minor, size, align);
    let root = tree.path().to_str().unwrap();
    let out = common::run_child(test, action, &[(pmem2::SYSFS_ROOT_ENV, root)]);
    common::assert_child_ok(&out);
}

// pmem2_source_size TEST6, pmem2_source_alignment TEST1/TEST2, pmem2_map TEST1/5/28.
#[test]
fn fake_device_dax_reports_sysfs_size_and_alignment() {
    match common::child_action().as_deref() {
        None => {
            let test = "fake_device_dax_reports_sysfs_size_and_alignment";
            with_fake_sysfs(test, "2m", "0x4000000\n", "2097152\n");
            with_fake_sysfs(test, "4k", "67108864\n", "4096\n");
        }
        Some(align) => {
            let (file, ..) = dev_zero();
            let source = Source::from_fd(&file).unwrap();
            assert_eq!(source.file_type(), Some(FileType::DeviceDax));
            assert_eq!(source.size().unwrap(), 64 * MIB);
            let align = if align == "2m" { 2 * MIB } else { 4096 };
            assert_eq!(source.alignment().unwrap() as u64, align);

            let mut config = Config::new();
            config.set_required_store_granularity(Granularity::Page);
            let map = Mapping::new(&config, &source).unwrap();
            assert_eq!(map.size() as u64, 64 * MIB);
            assert_eq!(map.file_type(), Some(FileType::DeviceDax));
            assert_eq!(map.address() as u64 % align.max(2 * MIB), 0);
            map.write(0, b"dax").unwrap();

            config.set_sharing(Sharing::Private);
            let err = Mapping::new(&config, &source).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::SrcDevdaxPrivate);
            assert_eq!(err.code(), -100020);

            if align == 2 * MIB {
                config.set_sharing(Sharing::Shared);
                config.set_offset(4096).unwrap();
                assert_eq!(Mapping::new(&config, &source).unwrap_err().code(), -100011);
                config.set_offset(2 * MIB).unwrap().set_length(4096);
                assert_eq!(Mapping::new(&config, &source).unwrap_err().code(), -100015);
                config.set_length(2 * MIB);
                assert_eq!(Mapping::new(&config, &source).unwrap().size() as u64, 2 * MIB);
            }
        }
    }
}

#[test]
fn fake_device_dax_with_bad_sysfs_values() {
    match common::child_action().as_deref() {
        None => {
            let test = "fake_device_dax_with_bad_sysfs_values";
            with_fake_sysfs(test, "align-not-power-of-two", "67108864\n", "3000\n");
            with_fake_sysfs(test, "align-garbage", "67108864\n", "2M\n");
            with_fake_sysfs(test, "size-without-newline", "67108864", "4096\n");
        }
        Some(action) => {
            let (file, ..) = dev_zero();
            let source = Source::from_fd(&file).unwrap();
            let mut config = Config::new();
            config.set_required_store_granularity(Granularity::Page);
            let (err, code) = match action {
                "align-not-power-of-two" => (source.alignment().unwrap_err(), -100013),
                "align-garbage" => (source.alignment().unwrap_err(), -100012),
                "size-without-newline" => (source.size().unwrap_err(), -100014),
                _ => unreachable!(),
            };
            assert_eq!(err.code(), code, "{action}: {err}");
            // Mapping stops at the same error.
            assert_eq!(Mapping::new(&config, &source).unwrap_err().code(), code, "{action}");
        }
    }
}

// A char device whose sysfs entry is missing or not "dax": libpmem2 returns realpath's
// -errno, or INVALID_FILE_TYPE.
#[test]
fn char_device_outside_the_dax_class() {
    match common::child_action().as_deref() {
        None => {
            let tree = tempfile::tempdir().unwrap();
            let root = tree.path().to_str().unwrap();
            let out = common::run_child(
                "char_device_outside_the_dax_class",
                "missing",
                &[(pmem2::SYSFS_ROOT_ENV, root)],
            );
            common::assert_child_ok(&out);
        }
        Some(_) => {
            let (file, ..) = dev_zero();
            let err = Source::from_fd(&file).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Os(libc::ENOENT), "{err}");
            assert_eq!(err.code(), -2);
        }
    }
}
