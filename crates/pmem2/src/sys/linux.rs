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

/// Maps EBADF to `INVALID_FILE_HANDLE` as libpmem2 does; other errnos stay `-errno`.
fn fd_error(context: &str) -> Error {
    let err = Error::last_os(context);
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
        return Err(fd_error("fcntl"));
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
        return Err(fd_error("fstat"));
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

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least a page).
///
/// The reservation is a `PROT_READ`, private anonymous placeholder (free under overcommit
/// accounting). Only its head and tail are trimmed here, so the returned range stays covered
/// until the caller replaces it with `MAP_FIXED`; no other thread's mapping can land there.
pub fn reserve_aligned(len: usize, align: usize) -> Result<NonNull<u8>> {
    let total = len.checked_add(align).ok_or_else(|| {
        Error::new(
            ErrorKind::MapRange,
            format!("cannot reserve {len} bytes aligned to {align}"),
        )
    })?;
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(Error::last_os("mmap"));
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - len;
    // SAFETY: [start, start+head) and [aligned+len, start+total) lie inside the placeholder
    // just created by this function and nothing else refers to them.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(aligned as *mut u8).ok_or_else(|| Error::new(ErrorKind::Unknown, "mmap returned a null address"))
}

/// What [`map_file_fixed`] was asked to do.
pub struct FixedMap {
    pub addr: NonNull<u8>,
    pub len: usize,
    pub prot: libc::c_int,
    pub private: bool,
    /// `None` for an anonymous mapping.
    pub fd: Option<RawFd>,
    pub offset: u64,
}

/// Places a mapping over a range this process reserved, trying MAP_SYNC first for shared
/// mappings. Returns whether MAP_SYNC was granted. Failures are the raw OS errno.
///
/// # Safety
/// `[addr, addr+len)` must be a placeholder owned by the caller (from [`reserve_aligned`]);
/// it is replaced with `MAP_FIXED`.
pub unsafe fn map_file_fixed(req: &FixedMap) -> std::result::Result<bool, i32> {
    let base = libc::MAP_FIXED | if req.fd.is_none() { libc::MAP_ANONYMOUS } else { 0 };
    let fd = req.fd.unwrap_or(-1);
    let offset = libc::off_t::try_from(req.offset).map_err(|_| libc::EOVERFLOW)?;
    let addr = req.addr.as_ptr().cast::<libc::c_void>();
    let call = |flags: libc::c_int| {
        // SAFETY: the caller owns the placeholder at `addr`; MAP_FIXED replaces only it.
        let got = unsafe { libc::mmap(addr, req.len, req.prot, flags, fd, offset) };
        if got == libc::MAP_FAILED {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
        } else {
            Ok(())
        }
    };
    if req.private {
        return call(base | libc::MAP_PRIVATE).map(|()| false);
    }
    match call(base | libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC) {
        Ok(()) => Ok(true),
        // EOPNOTSUPP: not DAX (page cache, tmpfs, anonymous); EINVAL: kernel before 4.15.
        Err(libc::EOPNOTSUPP) | Err(libc::EINVAL) => call(base | libc::MAP_SHARED).map(|()| false),
        Err(errno) => Err(errno),
    }
}

/// Replaces `[addr, addr+len)` with private anonymous read-write memory, releasing the file
/// pages at once while keeping the addresses reserved.
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
    loop {
        // SAFETY: guaranteed by the caller; msync does not read or write the memory.
        let rc = unsafe { libc::msync(addr as *mut libc::c_void, len, libc::MS_SYNC) };
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
