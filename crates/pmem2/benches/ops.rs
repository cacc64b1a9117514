//! pmem2 operations timed the same way as `bench/libpmem2_bench.c` times libpmem2 (run both
//! with `node bench/run.mjs`). Prints one JSON line per row:
//! `{"impl":"rust","row":"persist 64B CL","median_ns":...}`; rows of `"impl":"rust-fn"`
//! use the function pointers (`persist_fn`, `memcpy_fn`, ...) as the C harness does.
//!
//! Usage: `ops [--file PATH] [--reps N] [--quick]` (cargo passes `--bench`, ignored).
//! Every row is a batch of `iters` operations timed as a whole, repeated `reps` times with
//! all rows interleaved round-robin; the median of the per-operation times is printed.

use pmem2::{Config, Granularity, Mapping, MemFlags, Source};
use std::alloc::{alloc, Layout};
use std::time::Instant;

const MIB: usize = 1 << 20;

struct Row {
    name: &'static str,
    imp: &'static str,
    iters: usize,
    /// Every how many rounds the row runs (slow rows run less often).
    every: usize,
    run: Box<dyn FnMut(usize)>,
    samples: Vec<f64>,
}

fn map(file: &std::fs::File, force: Option<&str>) -> Mapping {
    match force {
        // SAFETY-free in edition 2021; the bench is single-threaded here.
        Some(v) => std::env::set_var("PMEM2_FORCE_GRANULARITY", v),
        None => std::env::remove_var("PMEM2_FORCE_GRANULARITY"),
    }
    let mut config = Config::new();
    config.set_required_store_granularity(Granularity::Page);
    let m = Mapping::new(&config, &Source::from_fd(file).unwrap()).unwrap();
    std::env::remove_var("PMEM2_FORCE_GRANULARITY");
    m
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let quick = args.iter().any(|a| a == "--quick");
    let reps: usize = arg("--reps")
        .map(|r| r.parse().unwrap())
        .unwrap_or(if quick { 20 } else { 200 });
    let tmp;
    let path = match arg("--file") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            tmp = tempfile::NamedTempFile::new_in(".").unwrap();
            tmp.path().to_path_buf()
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    file.set_len(16 * MIB as u64).unwrap();

    let cl: &'static Mapping = Box::leak(Box::new(map(&file, Some("CACHE_LINE"))));
    let page: &'static Mapping = Box::leak(Box::new(map(&file, None)));
    assert_eq!(cl.store_granularity(), Granularity::CacheLine);
    assert_eq!(page.store_granularity(), Granularity::Page);
    let cpu = pmem2::persist::cpu();
    println!(
        "{{\"impl\":\"rust\",\"meta\":{{\"flush\":\"{}\",\"copy\":\"{}\",\"movnt_threshold\":{},\"wc_workaround\":{}}}}}",
        cpu.flush_instruction().name(),
        cpu.copy_isa().name(),
        cpu.movnt_threshold(),
        cpu.wc_workaround()
    );

    // SAFETY: a fresh 64-byte aligned allocation of 1 MiB, initialised below, never freed.
    let src: &'static [u8] = unsafe {
        let p = alloc(Layout::from_size_align(MIB, 64).unwrap());
        for i in 0..MIB {
            p.add(i).write(i as u8);
        }
        std::slice::from_raw_parts(p, MIB)
    };
    let base = cl.address();
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |name, imp, iters, every, run: Box<dyn FnMut(usize)>| {
        rows.push(Row {
            name,
            imp,
            iters,
            every,
            run,
            samples: Vec::new(),
        })
    };

    let file_ref: &'static std::fs::File = Box::leak(Box::new(file.try_clone().unwrap()));
    add(
        "map+unmap 16MiB",
        "rust",
        1,
        1,
        Box::new(move |_| {
            let mut config = Config::new();
            config.set_required_store_granularity(Granularity::Page);
            let m = Mapping::new(&config, &Source::from_fd(file_ref).unwrap()).unwrap();
            drop(m);
        }),
    );
    for (name, len, iters) in [
        ("persist 64B CL", 64, 200),
        ("persist 4KiB CL", 4096, 50),
        ("persist 64KiB CL", 65536, 5),
    ] {
        let off = 8 * MIB;
        add(
            name,
            "rust",
            iters,
            1,
            Box::new(move |i| {
                // SAFETY: inside the mapping; plain stores to dirty the lines.
                unsafe { std::ptr::write_bytes(base.add(off), i as u8, len) };
                cl.persist(off, len).unwrap();
            }),
        );
        let persist = cl.persist_fn();
        add(
            name,
            "rust-fn",
            iters,
            1,
            Box::new(move |i| {
                // SAFETY: inside the live mapping.
                unsafe {
                    std::ptr::write_bytes(base.add(off), i as u8, len);
                    persist(base.add(off), len).unwrap();
                }
            }),
        );
    }
    let pbase = page.address();
    add(
        "persist 4KiB PAGE",
        "rust",
        1,
        4,
        Box::new(move |i| {
            // SAFETY: inside the mapping.
            unsafe { std::ptr::write_bytes(pbase.add(12 * MIB), i as u8, 4096) };
            page.persist(12 * MIB, 4096).unwrap();
        }),
    );
    for (size_name, len, iters, every) in [("256B", 256, 200, 1), ("4KiB", 4096, 50, 1), ("1MiB", MIB, 1, 1)] {
        for (flag_name, flags) in [
            ("flags=0", MemFlags::empty()),
            ("NT", MemFlags::NONTEMPORAL),
            ("T", MemFlags::TEMPORAL),
        ] {
            let name: &'static str = Box::leak(format!("memcpy {size_name} {flag_name}").into_boxed_str());
            let off = 2 * MIB;
            add(
                name,
                "rust",
                iters,
                every,
                Box::new(move |_| cl.memcpy(off, &src[..len], flags).unwrap()),
            );
            let memcpy = cl.memcpy_fn();
            add(
                name,
                "rust-fn",
                iters,
                every,
                Box::new(move |_| {
                    // SAFETY: inside the live mapping.
                    unsafe { memcpy(base.add(off), src.as_ptr(), len, flags) }.unwrap()
                }),
            );
        }
    }
    add(
        "memset 4KiB",
        "rust",
        50,
        1,
        Box::new(move |i| cl.memset(4 * MIB, i as u8, 4096, MemFlags::empty()).unwrap()),
    );
    let memset = cl.memset_fn();
    add(
        "memset 4KiB",
        "rust-fn",
        50,
        1,
        Box::new(move |i| {
            // SAFETY: inside the live mapping.
            unsafe { memset(base.add(4 * MIB), i as u8, 4096, MemFlags::empty()) }.unwrap()
        }),
    );
    add(
        "plain memset 1MiB",
        "rust",
        1,
        1,
        Box::new(move |i| {
            // SAFETY: inside the mapping; libc memset, no flush (the machine baseline).
            unsafe { libc::memset(base.add(4 * MIB).cast(), i as i32, MIB) };
        }),
    );

    // Warm-up, then interleaved rounds.
    for row in rows.iter_mut() {
        for i in 0..row.iters {
            (row.run)(i);
        }
    }
    for round in 0..reps {
        for row in rows.iter_mut() {
            if round % row.every != 0 {
                continue;
            }
            let start = Instant::now();
            for i in 0..row.iters {
                (row.run)(i);
            }
            row.samples.push(start.elapsed().as_nanos() as f64 / row.iters as f64);
        }
    }
    for row in rows.iter_mut() {
        row.samples.sort_by(f64::total_cmp);
        let median = row.samples[row.samples.len() / 2];
        println!(
            "{{\"impl\":\"{}\",\"row\":\"{}\",\"median_ns\":{:.1},\"samples\":{}}}",
            row.imp,
            row.name,
            median,
            row.samples.len()
        );
    }
}
