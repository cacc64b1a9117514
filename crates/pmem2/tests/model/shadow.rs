//! The copy functions' model: operations on a mapping, and a shadow `Vec<u8>` that says what
//! the mapping must hold after each one. Used by `tests/prop_mem.rs` (with proptest
//! strategies) and the fuzz target `mem` (with libFuzzer's bytes).
//!
//! An operation names its length and offsets symbolically ([`Len`], [`Pos`], [`Src`]) and
//! is resolved against the mapping's size when it runs, so every generated sequence is
//! meaningful for every size: at the edges, overlapping, past the end, or overflowing.

use pmem2::{Config, ErrorKind, Granularity, Mapping, MemFlags, Sharing, Source};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Lengths at the copy routines' boundaries: cache line, the non-temporal threshold (256),
/// a page, and larger.
pub const LENGTHS: [usize; 12] = [0, 1, 7, 63, 64, 65, 255, 256, 4095, 4096, 10_007, 65_549];

/// How long an operation is: a listed boundary length, or any, both capped by the size.
#[derive(Debug, Clone, Copy)]
pub enum Len {
    Listed(usize),
    Any(u32),
}

/// Where an operation starts, chosen once the length is known.
#[derive(Debug, Clone, Copy)]
pub enum Pos {
    Start,
    /// Ends exactly at the end of the mapping.
    End,
    Any(u32),
    /// Starts so far that the range passes the end by `1 + n % 64` bytes.
    Past(u32),
    /// An offset whose sum with the length overflows.
    Overflow,
}

/// Where `memmove_within` reads from.
#[derive(Debug, Clone, Copy)]
pub enum Src {
    /// Overlapping the destination: `dest + delta`, clamped into the mapping.
    Near(i32),
    At(Pos),
}

/// One call on the mapping (`seed` makes the source bytes, `flags` are `PMEM2_F_MEM_*` bits).
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Memcpy { dest: Pos, len: Len, flags: u32, seed: u8 },
    Memmove { dest: Pos, len: Len, flags: u32, seed: u8 },
    Within { dest: Pos, src: Src, len: Len, flags: u32 },
    Memset { dest: Pos, len: Len, value: u8, flags: u32 },
    Write { dest: Pos, len: Len, seed: u8 },
    Read { at: Pos, len: Len },
    Persist { at: Pos, len: Len },
    MemmoveFn { dest: Pos, src: Src, len: Len, flags: u32 },
    MemsetFn { dest: Pos, len: Len, value: u8, flags: u32 },
}

/// What a test maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A shared file mapping with the granularity the environment gives.
    SharedFile(Granularity),
    /// A private mapping of a file: BYTE, and the file never changes.
    PrivateFile,
    /// An anonymous source, shared or private: BYTE.
    Anonymous(Sharing),
}

/// `len` pseudo-random bytes from `seed` (xorshift), for file contents and copy sources.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A mapping under test, the file behind it, and the shadow of what it must hold.
pub struct Target {
    map: Mapping,
    file: Option<File>,
    /// The file's bytes before mapping.
    original: Vec<u8>,
    shadow: Vec<u8>,
    page: usize,
}

impl Target {
    pub fn new(kind: Kind, size: usize, seed: u8) -> Target {
        let mut config = Config::new();
        config.set_required_store_granularity(Granularity::Page);
        let (map, file, original) = match kind {
            Kind::Anonymous(sharing) => {
                config.set_sharing(sharing);
                let map = Mapping::new(&config, &Source::from_anon(size)).unwrap();
                (map, None, vec![0u8; size])
            }
            Kind::SharedFile(_) | Kind::PrivateFile => {
                let file = tempfile::tempfile().unwrap();
                let original = pattern(size, seed);
                file.write_all_at(&original, 0).unwrap();
                if kind == Kind::PrivateFile {
                    config.set_sharing(Sharing::Private);
                }
                let map = Mapping::new(&config, &Source::from_fd(&file).unwrap()).unwrap();
                (map, Some(file), original)
            }
        };
        let expected = match kind {
            Kind::SharedFile(g) => g,
            _ => Granularity::Byte,
        };
        assert_eq!(map.store_granularity(), expected, "the mapping this test is about");
        assert_eq!(map.size(), size);
        Target {
            map,
            file,
            shadow: original.clone(),
            original,
            page: pmem2::page_size(),
        }
    }

    pub fn size(&self) -> usize {
        self.shadow.len()
    }

    fn length(&self, len: Len) -> usize {
        match len {
            Len::Listed(n) => n.min(self.size()),
            Len::Any(n) => n as usize % (self.size() + 1),
        }
    }

    /// The offset for `pos` and `len`; `None` for one that is meant to be out of range.
    fn offset(&self, pos: Pos, len: usize) -> usize {
        let room = self.size() - len;
        match pos {
            Pos::Start => 0,
            Pos::End => room,
            Pos::Any(n) => n as usize % (room + 1),
            Pos::Past(n) => room + 1 + n as usize % 64,
            Pos::Overflow => usize::MAX - len / 2,
        }
    }

    fn source(&self, src: Src, dest: usize, len: usize) -> usize {
        match src {
            Src::Near(delta) => {
                let room = self.size() - len;
                (dest.min(room) as i64 + i64::from(delta)).clamp(0, room as i64) as usize
            }
            Src::At(pos) => self.offset(pos, len),
        }
    }

    fn inside(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.size())
    }

    /// Runs one operation, checks its result against the shadow's rule, and applies it to
    /// the shadow.
    pub fn apply(&mut self, op: Op) {
        let result: Result<(), ErrorKind>;
        match op {
            Op::Memcpy { dest, len, flags, seed } | Op::Memmove { dest, len, flags, seed } => {
                let len = self.length(len);
                let dest = self.offset(dest, len);
                let data = pattern(len, seed);
                let flags = MemFlags::from_bits_truncate(flags);
                result = if matches!(op, Op::Memcpy { .. }) {
                    self.map.memcpy(dest, &data, flags)
                } else {
                    self.map.memmove(dest, &data, flags)
                }
                .map_err(|e| e.kind());
                if self.inside(dest, len) {
                    self.shadow[dest..dest + len].copy_from_slice(&data);
                }
                self.expect(result, self.inside(dest, len), op);
            }
            Op::Within { dest, src, len, flags } => {
                let len = self.length(len);
                let dest = self.offset(dest, len);
                let from = self.source(src, dest, len);
                result = self
                    .map
                    .memmove_within(dest, from, len, MemFlags::from_bits_truncate(flags))
                    .map_err(|e| e.kind());
                let ok = self.inside(dest, len) && self.inside(from, len);
                if ok {
                    self.shadow.copy_within(from..from + len, dest);
                }
                self.expect(result, ok, op);
            }
            Op::Memset {
                dest,
                len,
                value,
                flags,
            } => {
                let len = self.length(len);
                let dest = self.offset(dest, len);
                result = self
                    .map
                    .memset(dest, value, len, MemFlags::from_bits_truncate(flags))
                    .map_err(|e| e.kind());
                if self.inside(dest, len) {
                    self.shadow[dest..dest + len].fill(value);
                }
                self.expect(result, self.inside(dest, len), op);
            }
            Op::Write { dest, len, seed } => {
                let len = self.length(len);
                let dest = self.offset(dest, len);
                let data = pattern(len, seed);
                result = self.map.write(dest, &data).map_err(|e| e.kind());
                if self.inside(dest, len) {
                    self.shadow[dest..dest + len].copy_from_slice(&data);
                }
                self.expect(result, self.inside(dest, len), op);
            }
            Op::Read { at, len } => {
                let len = self.length(len);
                let at = self.offset(at, len);
                let mut buf = vec![0xA5u8; len];
                result = self.map.read(at, &mut buf).map_err(|e| e.kind());
                if self.inside(at, len) {
                    assert!(
                        buf == self.shadow[at..at + len],
                        "read({at}, {len}) differs from the shadow"
                    );
                } else {
                    assert!(buf.iter().all(|&b| b == 0xA5), "a refused read wrote into the buffer");
                }
                self.expect(result, self.inside(at, len), op);
            }
            Op::Persist { at, len } => {
                let len = self.length(len);
                let at = self.offset(at, len);
                result = self.map.persist(at, len).map_err(|e| e.kind());
                self.expect(result, self.inside(at, len), op);
            }
            Op::MemmoveFn { dest, src, len, flags } => {
                // The raw function pointers have no checks: call them only inside.
                let len = self.length(len);
                let dest = self.offset(dest, len);
                let from = self.source(src, dest, len);
                if self.inside(dest, len) && self.inside(from, len) {
                    let f = self.map.memmove_fn();
                    let base = self.map.address();
                    // SAFETY: both ranges are inside this live, writable mapping (checked
                    // above); the function is memmove-safe for overlap.
                    unsafe { f(base.add(dest), base.add(from), len, MemFlags::from_bits_truncate(flags)) }.unwrap();
                    self.shadow.copy_within(from..from + len, dest);
                }
            }
            Op::MemsetFn {
                dest,
                len,
                value,
                flags,
            } => {
                let len = self.length(len);
                let dest = self.offset(dest, len);
                if self.inside(dest, len) {
                    let f = self.map.memset_fn();
                    // SAFETY: the range is inside this live, writable mapping (checked above).
                    unsafe {
                        f(
                            self.map.address().add(dest),
                            value,
                            len,
                            MemFlags::from_bits_truncate(flags),
                        )
                    }
                    .unwrap();
                    self.shadow[dest..dest + len].fill(value);
                }
            }
        }
        self.check(op);
    }

    fn expect(&self, result: Result<(), ErrorKind>, inside: bool, op: Op) {
        let wanted = if inside {
            Ok(())
        } else {
            Err(ErrorKind::LengthOutOfRange)
        };
        assert_eq!(result, wanted, "{op:?} on a mapping of {} bytes", self.size());
    }

    /// The mapping equals the shadow, and the rest of its last page is untouched (zero).
    fn check(&self, op: Op) {
        let whole = self.size().next_multiple_of(self.page);
        // SAFETY: the mapping covers whole pages, all readable (it was made READ|WRITE), and
        // nothing writes to it during this call.
        let now = unsafe { std::slice::from_raw_parts(self.map.address(), whole) };
        let (content, tail) = now.split_at(self.size());
        if content != self.shadow.as_slice() {
            let first = content.iter().zip(&self.shadow).position(|(a, b)| a != b).unwrap();
            panic!(
                "after {op:?} the mapping of {} bytes differs from the shadow first at byte {first}",
                self.size()
            );
        }
        assert!(tail.iter().all(|&b| b == 0), "after {op:?} a byte past the end changed");
    }

    /// After a sequence: a shared file holds the shadow once persisted; a private one is
    /// unchanged.
    pub fn finish(self, kind: Kind) {
        self.map.persist(0, self.size()).unwrap();
        if let Some(file) = &self.file {
            let mut on_disk = vec![0u8; self.size()];
            file.read_exact_at(&mut on_disk, 0).unwrap();
            let wanted = match kind {
                Kind::PrivateFile => &self.original,
                _ => &self.shadow,
            };
            assert!(&on_disk == wanted, "the file read with pread differs ({kind:?})");
            assert_eq!(file.metadata().unwrap().len(), self.size() as u64, "file size changed");
        }
    }
}
