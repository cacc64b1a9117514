//! Threads that map, write, persist and unmap their own files at the same moment, round after
//! round; after each round the files are read back with plain file I/O. The same scenario as
//! `bench/concurrent_maps.c` runs through Debian's libpmem2: `node scripts/concurrent-maps.mjs`
//! prints both.
//!
//! ```sh
//! cargo run --release -p pmem2 --example concurrent_maps -- --dir /tmp/race [--threads 8] [--rounds 3000]
//! ```
//!
//! Prints one JSON line per round, e.g.
//! `{"round":12,"failedMaps":0,"failureCodes":{},"missing":0,"foreign":0}`: maps that failed,
//! files that lack their own record after a successful map and write, and files that hold
//! another thread's record. Every count must be zero.

use pmem2::{Config, Granularity, Mapping, Source};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

/// Bytes of each record: "owner=<thread> round=<round>" padded with spaces.
const RECORD: usize = 32;

fn record(owner: usize, round: usize) -> [u8; RECORD] {
    let mut out = [b' '; RECORD];
    let text = format!("owner={owner} round={round}");
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

/// The owner named by a record, if the bytes hold one.
fn owner_of(bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.strip_prefix("owner=")?.split(' ').next()?.parse().ok()
}

struct Args {
    dir: PathBuf,
    threads: usize,
    rounds: usize,
    first_round: usize,
    size: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        threads: 8,
        rounds: 3000,
        first_round: 0,
        size: 64 * 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(&value),
            "--threads" => args.threads = number()?,
            "--rounds" => args.rounds = number()?,
            "--first-round" => args.first_round = number()?,
            "--size" => args.size = number()? as u64,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.dir.as_os_str().is_empty() || args.threads == 0 || args.size < RECORD as u64 {
        return Err(
            "usage: concurrent_maps --dir DIR [--threads N] [--rounds N] [--first-round N] [--size BYTES]".into(),
        );
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let files: Vec<Arc<File>> = (0..args.threads)
        .map(|t| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(args.dir.join(format!("r{t}.bin")))?;
            file.set_len(args.size)?;
            Ok(Arc::new(file))
        })
        .collect::<std::io::Result<_>>()?;
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    let config = Arc::new(config);
    let mut stdout = std::io::stdout().lock();
    for round in args.first_round..args.rounds {
        // Cleared first, so that whatever a file holds after the round was written in it.
        for file in &files {
            file.write_all_at(&[0; RECORD], 0)?;
        }
        let barrier = Arc::new(Barrier::new(args.threads));
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(owner, file)| {
                let (file, barrier, config) = (Arc::clone(file), Arc::clone(&barrier), Arc::clone(&config));
                std::thread::spawn(move || -> Result<(), i32> {
                    let source = Source::from_fd(&*file).map_err(|e| e.code())?;
                    barrier.wait();
                    let map = Mapping::new(&config, &source).map_err(|e| e.code())?;
                    let rec = record(owner, round);
                    map.write(0, &rec).expect("write inside the mapping");
                    map.persist(0, RECORD).expect("persist inside the mapping");
                    map.unmap().expect("unmap");
                    Ok(())
                })
            })
            .collect();
        let results: Vec<Result<(), i32>> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        let (mut failed, mut missing, mut foreign) = (0, 0, 0);
        let mut codes = BTreeMap::<i32, usize>::new();
        for (owner, (file, result)) in files.iter().zip(&results).enumerate() {
            let mut got = [0u8; RECORD];
            file.read_exact_at(&mut got, 0)?;
            if owner_of(&got).is_some_and(|o| o != owner) {
                foreign += 1;
            }
            match result {
                Err(code) => {
                    failed += 1;
                    *codes.entry(*code).or_default() += 1;
                }
                Ok(()) if got != record(owner, round) => missing += 1,
                Ok(()) => {}
            }
        }
        let codes: Vec<String> = codes.iter().map(|(code, n)| format!("\"{code}\":{n}")).collect();
        writeln!(
            stdout,
            "{{\"round\":{round},\"failedMaps\":{failed},\"failureCodes\":{{{}}},\"missing\":{missing},\"foreign\":{foreign}}}",
            codes.join(",")
        )?;
        stdout.flush()?;
    }
    Ok(())
}
