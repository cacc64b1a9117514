//! Linux system calls used by pmem2: fd inspection, placement, mmap with MAP_SYNC, msync.
//!
//! # Safety
//! Every function here that touches address space takes a raw range and states who may
//! own it. Callers in `map.rs` only pass ranges that pmem2 itself reserved.
#![allow(unsafe_code)]

use crate::error::{Error, ErrorKind, Result};
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// How an fd was opened (`fcntl(F_GETFL) & O_ACCMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

/// The fields of `struct stat` that pmem2 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub mode: u32,
    pub size: i64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
}

/// The kind of an inode, from `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InodeKind {
    Regular,
    Directory,
    CharDevice,
    Other(u32),
}

impl FileStat {
    pub fn kind(&self) -> InodeKind {
        match self.mode & libc::S_IFMT {
            libc::S_IFREG => InodeKind::Regular,
            libc::S_IFDIR => InodeKind::Directory,
            libc::S_IFCHR => InodeKind::CharDevice,
            other => InodeKind::Other(other),
        }
    }

    /// `(major, minor)` of the device this inode represents.
    pub fn rdev_major_minor(&self) -> (u32, u32) {
        (libc::major(self.rdev), libc::minor(self.rdev))
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Maps EBADF to `INVALID_FILE_HANDLE` as libpmem2 does; other errnos stay `-errno`. The
/// message names the fd the caller gave (`fcntl of fd 9999: Bad file descriptor`).
fn fd_error(syscall: &str, fd: RawFd) -> Error {
    let err = Error::last_os(&format!("{syscall} of fd {fd}"));
    if err.kind() == ErrorKind::Os(libc::EBADF) {
        Error::new(ErrorKind::InvalidFileHandle, err.message())
    } else {
        err
    }
}

/// The access mode of `fd`.
pub fn access_mode(fd: RawFd) -> Result<AccessMode> {
    // SAFETY: F_GETFL reads descriptor flags; an invalid fd only yields EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(fd_error("fcntl", fd));
    }
    Ok(match flags & libc::O_ACCMODE {
        libc::O_RDONLY => AccessMode::ReadOnly,
        libc::O_WRONLY => AccessMode::WriteOnly,
        _ => AccessMode::ReadWrite,
    })
}

/// `fstat(fd)`.
pub fn fstat(fd: RawFd) -> Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer; an invalid fd only yields EBADF.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return Err(fd_error("fstat", fd));
    }
    // SAFETY: fstat succeeded, so it initialised the buffer.
    let st = unsafe { st.assume_init() };
    Ok(FileStat {
        mode: st.st_mode,
        size: st.st_size,
        dev: st.st_dev,
        ino: st.st_ino,
        rdev: st.st_rdev,
    })
}

/// How many times [`map_aligned`] looks for a new hole after another thread took the last one.
const PLACEMENT_ATTEMPTS: usize = 64;

/// What [`map_aligned`] is asked to map.
pub struct MapRequest {
    pub len: usize,
    /// The alignment of the address (a power of two, at least a page).
    pub align: usize,
    pub prot: libc::c_int,
    pub private: bool,
    /// `None` for an anonymous mapping.
    pub fd: Option<RawFd>,
    pub offset: u64,
}

/// Places a new mapping at a free address aligned to `req.align`, trying MAP_SYNC first for
/// shared mappings. Returns the address and whether MAP_SYNC was granted; failures are the
/// raw OS errno.
///
/// It never maps over anything: `MAP_FIXED` over a placeholder is unsafe in a threaded
/// process, because a `MAP_FIXED` mmap that fails may already have removed the placeholder
/// (mmap(2): "the existing mappings may have been removed"), another thread's `mmap(NULL)`
/// can take the hole, and the next `MAP_FIXED` would replace *that* mapping. So it finds an
/// aligned hole (a temporary reservation, released at once) and maps into it with
/// `MAP_FIXED_NOREPLACE`, which fails with EEXIST instead of replacing anything; if another
/// thread took the hole meanwhile, it looks for a new one.
///
/// The MAP_SYNC attempt passes the hole as a plain hint instead: Linux 6.1 (the real-DAX
/// tier's guest kernel) refuses `MAP_FIXED_NOREPLACE` under `MAP_SHARED_VALIDATE` with
/// EOPNOTSUPP, the same answer as for a file without DAX, so MAP_SYNC would never be granted.
/// Without any `MAP_FIXED` flag the kernel never replaces a mapping either; a result away from
/// the hole is released and the search goes on.
///
/// pmem2's own mapping threads take turns (a process-wide lock): two threads searching at
/// once would find the same hole and could keep taking it from each other with their
/// temporary reservations. The kernel serialises mmap calls anyway, so nothing is lost.
pub fn map_aligned(req: &MapRequest) -> std::result::Result<(NonNull<u8>, bool), i32> {
    static PLACING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = PLACING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let offset = libc::off_t::try_from(req.offset).map_err(|_| libc::EOVERFLOW)?;
    let fd = req.fd.unwrap_or(-1);
    let kind = if req.fd.is_none() { libc::MAP_ANONYMOUS } else { 0 };
    let mut try_sync = !req.private;
    for _ in 0..PLACEMENT_ATTEMPTS {
        let hole = find_aligned_hole(req.len, req.align)?;
        let place = |flags: libc::c_int, how| place_at(hole, req, flags | kind, how, fd, offset);
        if try_sync {
            match place(libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC, Placement::Hint) {
                Ok(addr) => return Ok((addr, true)),
                // EOPNOTSUPP: not DAX (page cache, tmpfs); EINVAL: anonymous memory, or a
                // kernel before 4.15. Nothing was mapped; the hole is still free.
                Err(libc::EOPNOTSUPP) | Err(libc::EINVAL) => try_sync = false,
                Err(libc::EEXIST) => continue,
                Err(errno) => return Err(errno),
            }
        }
        let sharing = if req.private {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        match place(sharing, Placement::NoReplace) {
            Ok(addr) => return Ok((addr, false)),
            Err(libc::EEXIST) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Err(libc::EEXIST)
}

/// A free range of `len` bytes aligned to `align`, found by reserving `len + 2 * align` bytes
/// and releasing them at once. Nothing keeps it free: the caller maps into it with
/// `MAP_FIXED_NOREPLACE` or a hint and retries if another thread was faster.
///
/// The range stays free for `align` bytes past its end too: a DAX file honours a hint only if
/// the hint has room for the mapping plus one huge page (the kernel's
/// `thp_get_unmapped_area` pads the length by 2 MiB to align file offsets to huge pages), and
/// `align` is at least 2 MiB.
fn find_aligned_hole(len: usize, align: usize) -> std::result::Result<usize, i32> {
    let total = align
        .checked_mul(2)
        .and_then(|pad| len.checked_add(pad))
        .ok_or(libc::ENOMEM)?;
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(last_errno());
    }
    // SAFETY: the reservation was created just above by this function and nothing refers to it.
    unsafe { libc::munmap(raw, total) };
    Ok((raw as usize + align - 1) & !(align - 1))
}

/// How [`place_at`] asks for the hole.
#[derive(Clone, Copy)]
enum Placement {
    /// `MAP_FIXED_NOREPLACE`: EEXIST if anything overlaps the hole.
    NoReplace,
    /// The hole as a plain hint: the kernel maps elsewhere if anything overlaps it.
    Hint,
}

/// One mmap into `hole` that replaces nothing. Returns EEXIST when the hole is taken.
fn place_at(
    hole: usize,
    req: &MapRequest,
    flags: libc::c_int,
    how: Placement,
    fd: RawFd,
    offset: libc::off_t,
) -> std::result::Result<NonNull<u8>, i32> {
    let (len, align) = (req.len, req.align);
    let flags = match how {
        Placement::NoReplace => flags | libc::MAP_FIXED_NOREPLACE,
        Placement::Hint => flags,
    };
    // SAFETY: neither a hint nor MAP_FIXED_NOREPLACE ever replaces an existing mapping: with
    // the hint the kernel maps elsewhere if anything overlaps [hole, hole+len), with
    // MAP_FIXED_NOREPLACE the call fails with EEXIST and changes nothing.
    let got = unsafe { libc::mmap(hole as *mut libc::c_void, len, req.prot, flags, fd, offset) };
    if got == libc::MAP_FAILED {
        return Err(last_errno());
    }
    if got as usize != hole && !(got as usize).is_multiple_of(align) {
        // A hint the kernel could not honour, or a kernel before 4.17 (which treats
        // MAP_FIXED_NOREPLACE as a hint), may place the mapping elsewhere; an unaligned
        // result is released and the search goes on.
        // SAFETY: `got` is the mapping this call just created; nothing else refers to it.
        unsafe { libc::munmap(got, len) };
        return Err(libc::EEXIST);
    }
    NonNull::new(got.cast::<u8>()).ok_or(libc::EINVAL)
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Replaces `[addr, addr+len)` with private anonymous read-write memory, releasing the file
/// pages at once while keeping the addresses reserved.
///
/// If this fails the range may be partly or wholly unmapped and another thread may already
/// have mapped something there (mmap(2) on a failed `MAP_FIXED`): the caller must then never
/// touch or unmap the range again.
///
/// # Safety
/// The range must be a mapping owned by the caller.
pub unsafe fn replace_with_anonymous(addr: NonNull<u8>, len: usize) -> Result<()> {
    // SAFETY: the caller owns the range; MAP_FIXED replaces exactly it.
    let got = unsafe {
        libc::mmap(
            addr.as_ptr().cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(Error::last_os("mmap"));
    }
    Ok(())
}

/// `munmap`.
///
/// # Safety
/// The range must be owned by the caller and no longer referenced.
pub unsafe fn unmap(addr: NonNull<u8>, len: usize) -> Result<()> {
    // SAFETY: guaranteed by the caller.
    if unsafe { libc::munmap(addr.as_ptr().cast(), len) } != 0 {
        return Err(Error::last_os("munmap"));
    }
    Ok(())
}

/// `msync(MS_SYNC)`, retried on EINTR.
///
/// # Safety
/// `addr` must be page aligned and the range must lie inside a mapping of this process.
pub unsafe fn msync(addr: *const u8, len: usize) -> Result<()> {
    const FLAGS: libc::c_int = libc::MS_SYNC;
    loop {
        // SAFETY: guaranteed by the caller; msync does not read or write the memory.
        let rc = unsafe { libc::msync(addr as *mut libc::c_void, len, FLAGS) };
        crate::mem::counters::record_msync(addr, len, FLAGS);
        if rc == 0 {
            return Ok(());
        }
        let err = Error::last_os("msync");
        if err.kind() != ErrorKind::Os(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Protection bits in the kernel's encoding.
pub fn prot_bits(read: bool, write: bool, exec: bool) -> libc::c_int {
    let mut prot = libc::PROT_NONE;
    if read {
        prot |= libc::PROT_READ;
    }
    if write {
        prot |= libc::PROT_WRITE;
    }
    if exec {
        prot |= libc::PROT_EXEC;
    }
    prot
}

/// `posix_fallocate(fd, 0, len)`: makes the file at least `len` bytes with blocks allocated,
/// so stores through a mapping cannot hit SIGBUS for lack of space.
pub fn allocate(fd: RawFd, len: u64) -> Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| Error::os(libc::EFBIG, "posix_fallocate"))?;
    // SAFETY: posix_fallocate only acts on the descriptor; a bad fd yields an errno.
    let rc = unsafe { libc::posix_fallocate(fd, 0, len) };
    if rc != 0 {
        return Err(Error::os(rc, "posix_fallocate"));
    }
    Ok(())
}
