//! Many threads mapping, writing, persisting and unmapping at once: every byte must land in
//! the file it was written to, checked with plain file I/O after the mappings are gone.
//!
//! The defect this guards against: a failed `mmap(addr, MAP_FIXED | MAP_SYNC)` may remove the
//! placeholder at `addr` before failing (mmap(2)); another thread's `mmap(NULL, ...)` can take
//! the hole, and a fallback `MAP_FIXED` then replaces *that* thread's mapping.

mod common;

use common::{maps, KIB, MIB};
use pmem2::{Config, Granularity, Mapping, Sharing, Source};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;

fn page_config() -> Config {
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    config
}

fn record(owner: usize, round: usize) -> Vec<u8> {
    format!("owner={owner} round={round} ").into_bytes()
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

/// `rounds` rounds of THREADS threads, each mapping its own file at the same moment, writing
/// its record through the mapping, persisting and unmapping; then the files are read back.
/// Returns the number of files that did not hold exactly their own record.
fn wrong_files(dir: &Path, rounds: usize, size: u64) -> usize {
    let paths: Vec<PathBuf> = (0..THREADS).map(|i| dir.join(format!("f{i}.bin"))).collect();
    let mut wrong = 0;
    for round in 0..rounds {
        for path in &paths {
            let file = File::create(path).unwrap();
            file.set_len(size).unwrap();
        }
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(owner, path)| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let file = open_rw(&path);
                    let source = Source::from_fd(&file).unwrap();
                    barrier.wait();
                    let map = Mapping::new(&page_config(), &source).expect("map");
                    let rec = record(owner, round);
                    map.write(0, &rec).unwrap();
                    map.persist(0, rec.len()).unwrap();
                    map.unmap().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a mapping thread failed");
        }
        for (owner, path) in paths.iter().enumerate() {
            let expected = record(owner, round);
            let mut got = vec![0u8; expected.len()];
            File::open(path).unwrap().read_exact(&mut got).unwrap();
            if got != expected {
                wrong += 1;
            }
        }
    }
    wrong
}

#[test]
fn concurrent_maps_of_different_files_never_write_into_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = std::env::var("PMEM2_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let wrong = wrong_files(dir.path(), rounds, 64 * KIB);
    assert_eq!(
        wrong,
        0,
        "{wrong} of {} files held another file's record",
        rounds * THREADS
    );
}

/// Disjoint ranges of one file, mapped and written by many threads at once (each thread maps
/// the whole file and writes only its own slice), then checked with pread.
#[test]
fn concurrent_writers_of_disjoint_ranges_of_one_file() {
    let file = tempfile::tempfile().unwrap();
    let slice = 256 * KIB as usize;
    file.set_len((slice * THREADS) as u64).unwrap();
    let file = Arc::new(file);
    let rounds = 40;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let file = Arc::clone(&file);
            std::thread::spawn(move || {
                let source = Source::from_fd(&*file).unwrap();
                for round in 0..rounds {
                    let map = Mapping::new(&page_config(), &source).unwrap();
                    let byte = (t * 31 + round) as u8;
                    map.memset(t * slice, byte, slice, pmem2::MemFlags::empty()).unwrap();
                    map.unmap().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for t in 0..THREADS {
        let mut got = vec![0u8; slice];
        file.read_exact_at(&mut got, (t * slice) as u64).unwrap();
        let byte = (t * 31 + rounds - 1) as u8;
        assert!(got.iter().all(|&b| b == byte), "slice {t} holds another thread's bytes");
    }
}

/// Anonymous and private mappings race with shared file mappings: none may replace another.
#[test]
fn concurrent_anonymous_private_and_shared_maps_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    File::create(&path).unwrap().set_len(MIB).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                for round in 0..200 {
                    let map = match t % 3 {
                        0 => Mapping::new(&page_config(), &Source::from_anon(MIB as usize)).unwrap(),
                        1 => {
                            let mut config = page_config();
                            config.set_sharing(Sharing::Private);
                            Mapping::new(&config, &Source::from_fd(&open_rw(&path)).unwrap()).unwrap()
                        }
                        _ => Mapping::new(&page_config(), &Source::from_fd(&open_rw(&path)).unwrap()).unwrap(),
                    };
                    let mark = [t as u8, round as u8];
                    map.write(4096 * t, &mark).unwrap();
                    let mut back = [0u8; 2];
                    map.read(4096 * t, &mut back).unwrap();
                    assert_eq!(back, mark, "thread {t} round {round}: another mapping replaced ours");
                    map.unmap().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Shared writers (t % 3 == 2) wrote their marks into the file; private ones must not have.
    let file = File::open(&path).unwrap();
    for t in 0..THREADS {
        let mut got = [0u8; 2];
        file.read_exact_at(&mut got, 4096 * t as u64).unwrap();
        if t % 3 == 2 {
            assert_eq!(got, [t as u8, 199], "shared writer {t}");
        } else {
            assert_eq!(got, [0, 0], "private or anonymous writer {t} reached the file");
        }
    }
    let dir_name = dir.path().to_string_lossy().into_owned();
    let left: Vec<_> = maps().into_iter().filter(|e| e.path.starts_with(&dir_name)).collect();
    assert!(left.is_empty(), "mappings of the file were left behind: {left:?}");
}

/// Threads outside pmem2 that call `mmap(NULL, ...)` while pmem2 maps: none of their
/// mappings may be replaced by a pmem2 mapping, and pmem2's data must reach its own file.
#[test]
fn foreign_mmap_users_keep_their_memory() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let foreign: Vec<_> = (0..3)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut replaced = 0usize;
                let mut rounds = 0usize;
                while !stop.load(Ordering::Relaxed) || rounds < 1000 {
                    rounds += 1;
                    let len = (64 * KIB as usize) << (rounds % 6);
                    // SAFETY: a fresh anonymous mapping chosen by the kernel; only this thread
                    // uses it, and it is unmapped below.
                    let p = unsafe {
                        libc::mmap(
                            std::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        )
                    };
                    assert_ne!(p, libc::MAP_FAILED);
                    let words = p.cast::<u64>();
                    let mark = 0xF0F0_0000_0000_0000 | ((t as u64) << 32) | rounds as u64;
                    // SAFETY: `p` is this thread's read-write mapping of `len` bytes.
                    unsafe {
                        words.write_volatile(mark);
                        words.add(len / 8 - 1).write_volatile(mark);
                    }
                    std::thread::yield_now();
                    // SAFETY: as above; if pmem2 had replaced the mapping with a file mapping
                    // the reads would see the file's bytes (or fault) instead of the marks.
                    let intact =
                        unsafe { words.read_volatile() == mark && words.add(len / 8 - 1).read_volatile() == mark };
                    replaced += usize::from(!intact);
                    // SAFETY: unmapping this thread's own mapping.
                    unsafe { libc::munmap(p, len) };
                }
                replaced
            })
        })
        .collect();
    let wrong = wrong_files(dir.path(), 150, 64 * KIB);
    stop.store(true, Ordering::Relaxed);
    let replaced: usize = foreign.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(replaced, 0, "pmem2 replaced {replaced} mappings of other threads");
    assert_eq!(wrong, 0, "{wrong} files held another file's record");
}
