//! Maps a file, writes a record through the mapping, persists it, and reads it back.
//!
//! ```sh
//! cargo run -p pmem2 --example map_write_persist -- /mnt/pmem/demo.bin
//! ```
//!
//! Without an argument it uses a file in the system's temporary directory. On a DAX filesystem
//! the mapping gets MAP_SYNC and CACHE_LINE granularity (persist = CLWB + SFENCE); on any other
//! filesystem it gets PAGE granularity (persist = msync).

use pmem2::{Config, Granularity, Mapping, Source};
use std::fs::OpenOptions;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pmem2-example.bin"));

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if file.metadata()?.len() < 4096 {
        file.set_len(4096)?;
    }

    let mut config = Config::new();
    // The coarsest granularity this program can handle: PAGE works on every filesystem.
    config.set_required_store_granularity(Granularity::Page);
    let map = Mapping::new(&config, &Source::from_fd(&file)?)?;
    drop(file); // the mapping does not need the file descriptor

    let record = b"hello, persistent memory";
    map.write(0, record)?;
    map.persist(0, record.len())?;

    let mut back = vec![0u8; record.len()];
    map.read(0, &mut back)?;
    assert_eq!(back, record);

    println!(
        "{}: wrote and persisted {} bytes; mapping of {} bytes, granularity {:?}, MAP_SYNC {}",
        path.display(),
        record.len(),
        map.size(),
        map.store_granularity(),
        map.map_sync()
    );
    map.unmap()?;
    Ok(())
}
