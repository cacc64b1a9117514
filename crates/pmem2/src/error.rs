//! Errors with libpmem2's stable codes.
//!
//! Every failure is an [`Error`]: an [`ErrorKind`] (one variant per `PMEM2_E_*`
//! code, plus [`ErrorKind::Os`] for `-errno` results) and a message that says what
//! was wrong with which value. [`Error::code`] returns the exact number libpmem2
//! would return, so programs ported from C keep their error handling.

use std::fmt;

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $code:literal; )*) => {
        /// What went wrong, as one of libpmem2's `PMEM2_E_*` codes or an OS errno.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$doc])* $variant, )*
            /// A system call failed; the value is the positive `errno`.
            Os(i32),
        }

        /// Every `PMEM2_E_*` name with its number, in libpmem2's order.
        pub const ERROR_CODES: &[(&str, i32)] = &[ $( ($name, $code), )* ];

        impl ErrorKind {
            /// The number libpmem2 returns for this error (`-errno` for [`ErrorKind::Os`]).
            pub fn code(self) -> i32 {
                match self { $( ErrorKind::$variant => $code, )* ErrorKind::Os(errno) => -errno }
            }

            /// The symbolic name: `"PMEM2_E_MAP_RANGE"`, or the errno name such as `"EACCES"`.
            pub fn name(self) -> &'static str {
                match self { $( ErrorKind::$variant => $name, )* ErrorKind::Os(errno) => errno_name(errno) }
            }

            /// The kind for a libpmem2 return value (`-100006`, or `-13` for EACCES).
            pub fn from_code(code: i32) -> Option<ErrorKind> {
                match code {
                    $( $code => Some(ErrorKind::$variant), )*
                    c if c < 0 && c > -4096 => Some(ErrorKind::Os(-c)),
                    _ => None,
                }
            }
        }
    };
}

error_kinds! {
    /// `PMEM2_E_UNKNOWN`: no more precise code applies.
    Unknown = "PMEM2_E_UNKNOWN", -100000;
    /// `PMEM2_E_NOSUPP`: the operation is not supported for this source or platform.
    NotSupported = "PMEM2_E_NOSUPP", -100001;
    /// `PMEM2_E_FILE_HANDLE_NOT_SET`: the seed form's `map` was called without `set_fd`.
    FileHandleNotSet = "PMEM2_E_FILE_HANDLE_NOT_SET", -100003;
    /// `PMEM2_E_INVALID_FILE_HANDLE`: the fd is negative, closed, or opened write-only.
    InvalidFileHandle = "PMEM2_E_INVALID_FILE_HANDLE", -100004;
    /// `PMEM2_E_INVALID_FILE_TYPE`: directories, FIFOs, sockets and non-DAX devices cannot be mapped.
    InvalidFileType = "PMEM2_E_INVALID_FILE_TYPE", -100005;
    /// `PMEM2_E_MAP_RANGE`: offset + length overflows or reaches past the end of the source.
    MapRange = "PMEM2_E_MAP_RANGE", -100006;
    /// `PMEM2_E_MAPPING_EXISTS`: the address range is already used by another mapping.
    MappingExists = "PMEM2_E_MAPPING_EXISTS", -100007;
    /// `PMEM2_E_GRANULARITY_NOT_SET`: the modern form requires a store granularity.
    GranularityNotSet = "PMEM2_E_GRANULARITY_NOT_SET", -100008;
    /// `PMEM2_E_GRANULARITY_NOT_SUPPORTED`: unknown value, or finer than the platform offers.
    GranularityNotSupported = "PMEM2_E_GRANULARITY_NOT_SUPPORTED", -100009;
    /// `PMEM2_E_OFFSET_OUT_OF_RANGE`: the offset is larger than `i64::MAX`.
    OffsetOutOfRange = "PMEM2_E_OFFSET_OUT_OF_RANGE", -100010;
    /// `PMEM2_E_OFFSET_UNALIGNED`: the offset is not a multiple of the source alignment.
    OffsetUnaligned = "PMEM2_E_OFFSET_UNALIGNED", -100011;
    /// `PMEM2_E_INVALID_ALIGNMENT_FORMAT`: a device DAX alignment could not be parsed.
    InvalidAlignmentFormat = "PMEM2_E_INVALID_ALIGNMENT_FORMAT", -100012;
    /// `PMEM2_E_INVALID_ALIGNMENT_VALUE`: the alignment is not a power of two.
    InvalidAlignmentValue = "PMEM2_E_INVALID_ALIGNMENT_VALUE", -100013;
    /// `PMEM2_E_INVALID_SIZE_FORMAT`: a device DAX size could not be parsed.
    InvalidSizeFormat = "PMEM2_E_INVALID_SIZE_FORMAT", -100014;
    /// `PMEM2_E_LENGTH_UNALIGNED`: the length is not a multiple of the source alignment.
    LengthUnaligned = "PMEM2_E_LENGTH_UNALIGNED", -100015;
    /// `PMEM2_E_MAPPING_NOT_FOUND`: the mapping was already deleted.
    MappingNotFound = "PMEM2_E_MAPPING_NOT_FOUND", -100016;
    /// `PMEM2_E_BUFFER_TOO_SMALL`: the output buffer cannot hold the result.
    BufferTooSmall = "PMEM2_E_BUFFER_TOO_SMALL", -100017;
    /// `PMEM2_E_SOURCE_EMPTY`: the file (or anonymous source) has size 0.
    SourceEmpty = "PMEM2_E_SOURCE_EMPTY", -100018;
    /// `PMEM2_E_INVALID_SHARING_VALUE`: sharing is neither SHARED nor PRIVATE.
    InvalidSharingValue = "PMEM2_E_INVALID_SHARING_VALUE", -100019;
    /// `PMEM2_E_SRC_DEVDAX_PRIVATE`: device DAX cannot be mapped MAP_PRIVATE.
    SrcDevdaxPrivate = "PMEM2_E_SRC_DEVDAX_PRIVATE", -100020;
    /// `PMEM2_E_INVALID_ADDRESS_REQUEST_TYPE`: kept for numbering; never returned.
    InvalidAddressRequestType = "PMEM2_E_INVALID_ADDRESS_REQUEST_TYPE", -100021;
    /// `PMEM2_E_ADDRESS_UNALIGNED`: an address is not suitably aligned.
    AddressUnaligned = "PMEM2_E_ADDRESS_UNALIGNED", -100022;
    /// `PMEM2_E_ADDRESS_NULL`: kept for numbering; never returned.
    AddressNull = "PMEM2_E_ADDRESS_NULL", -100023;
    /// `PMEM2_E_DEEP_FLUSH_RANGE`: the deep-flush range is outside the mapping.
    DeepFlushRange = "PMEM2_E_DEEP_FLUSH_RANGE", -100024;
    /// `PMEM2_E_INVALID_REGION_FORMAT`: an nd region name could not be parsed.
    InvalidRegionFormat = "PMEM2_E_INVALID_REGION_FORMAT", -100025;
    /// `PMEM2_E_DAX_REGION_NOT_FOUND`: no DAX region matches the device.
    DaxRegionNotFound = "PMEM2_E_DAX_REGION_NOT_FOUND", -100026;
    /// `PMEM2_E_INVALID_DEV_FORMAT`: a sysfs `dev` file is malformed.
    InvalidDevFormat = "PMEM2_E_INVALID_DEV_FORMAT", -100027;
    /// `PMEM2_E_CANNOT_READ_BOUNDS`: namespace bounds could not be read.
    CannotReadBounds = "PMEM2_E_CANNOT_READ_BOUNDS", -100028;
    /// `PMEM2_E_NO_BAD_BLOCK_FOUND`: iteration over bad blocks is finished.
    NoBadBlockFound = "PMEM2_E_NO_BAD_BLOCK_FOUND", -100029;
    /// `PMEM2_E_LENGTH_OUT_OF_RANGE`: a length reaches past what it may cover.
    LengthOutOfRange = "PMEM2_E_LENGTH_OUT_OF_RANGE", -100030;
    /// `PMEM2_E_INVALID_PROT_FLAG`: protection has bits other than READ, WRITE and EXEC.
    InvalidProtFlag = "PMEM2_E_INVALID_PROT_FLAG", -100031;
    /// `PMEM2_E_NO_ACCESS`: the fd does not permit the requested protection.
    NoAccess = "PMEM2_E_NO_ACCESS", -100032;
    /// `PMEM2_E_VM_RESERVATION_NOT_EMPTY`: the reservation still holds mappings.
    VmReservationNotEmpty = "PMEM2_E_VM_RESERVATION_NOT_EMPTY", -100033;
    /// `PMEM2_E_MAP_EXISTS`: the range is already registered as a mapping.
    MapExists = "PMEM2_E_MAP_EXISTS", -100034;
    /// `PMEM2_E_FILE_DESCRIPTOR_NOT_SET`: the source has no file descriptor.
    FileDescriptorNotSet = "PMEM2_E_FILE_DESCRIPTOR_NOT_SET", -100035;
    /// `PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED`: the operation needs an fd source.
    SourceTypeNotSupported = "PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED", -100036;
    /// `PMEM2_E_IO_FAIL`: a physical I/O error (possibly a bad block).
    IoFail = "PMEM2_E_IO_FAIL", -100037;
}

/// A failed pmem2 operation: a stable [`ErrorKind`] and a message naming the values involved.
///
/// ```
/// use pmem2::{Config, ErrorKind};
/// let mut config = Config::new();
/// let err = config.set_offset(u64::MAX).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::OffsetOutOfRange);
/// assert_eq!(err.code(), -100010);
/// assert_eq!(err.name(), "PMEM2_E_OFFSET_OUT_OF_RANGE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The file the failed operation was given by path ([`map_file`](crate::map_file)).
    path: Option<std::path::PathBuf>,
    /// The system call that failed, for OS errors.
    syscall: Option<&'static str>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            path: None,
            syscall: None,
        }
    }

    /// The same error, naming the file it concerns (Node's fs errors carry `path` too).
    pub(crate) fn with_path(mut self, path: &std::path::Path) -> Error {
        self.path = Some(path.to_owned());
        self
    }

    /// The same error, naming the system call that failed.
    pub(crate) fn with_syscall(mut self, syscall: &'static str) -> Error {
        self.syscall = Some(syscall);
        self
    }

    /// The path of the file the failed call was given, when it was given one by path.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The system call that failed (`"open"`, `"mmap"`, …), when the error comes from one.
    pub fn syscall(&self) -> Option<&'static str> {
        self.syscall
    }

    /// An OS error from the calling thread's `errno`, prefixed with what was being done.
    pub(crate) fn last_os(context: &str) -> Error {
        let err = std::io::Error::last_os_error();
        Error::os(err.raw_os_error().unwrap_or(libc::EIO), context)
    }

    /// An OS error for `errno` (positive), prefixed with what was being done.
    pub(crate) fn os(errno: i32, context: &str) -> Error {
        let text = std::io::Error::from_raw_os_error(errno);
        // io::Error's Display appends " (os error N)"; keep only the strerror text.
        let text = text.to_string();
        let text = text.split(" (os error").next().unwrap_or_default().to_owned();
        Error::new(ErrorKind::Os(errno), format!("{context}: {text}"))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The libpmem2 return value: a `PMEM2_E_*` number or `-errno`.
    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// `"PMEM2_E_MAP_RANGE"`, or the errno name such as `"EACCES"`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The human-readable message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.name())
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> std::io::Error {
        match err.kind {
            ErrorKind::Os(errno) => std::io::Error::from_raw_os_error(errno),
            _ => std::io::Error::other(err),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The symbolic name of a Linux errno, as Node prints it (`"EACCES"`).
pub fn errno_name(errno: i32) -> &'static str {
    use libc::*;
    match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        ETXTBSY => "ETXTBSY",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        EOVERFLOW => "EOVERFLOW",
        ENOTSUP => "ENOTSUP",
        ENOSYS => "ENOSYS",
        ELOOP => "ELOOP",
        ENAMETOOLONG => "ENAMETOOLONG",
        EDQUOT => "EDQUOT",
        EHWPOISON => "EHWPOISON",
        _ => "EUNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_libpmem2_numbering() {
        assert_eq!(ErrorKind::MapRange.code(), -100006);
        assert_eq!(ErrorKind::IoFail.code(), -100037);
        assert_eq!(ErrorKind::Os(libc::EACCES).code(), -13);
        assert_eq!(ErrorKind::Os(libc::EACCES).name(), "EACCES");
        // -100002 (PMEM2_E_INVALID_ARG) was removed before 1.9 and stays unused.
        assert!(ERROR_CODES.iter().all(|&(_, c)| c != -100002));
        for &(name, code) in ERROR_CODES {
            let kind = ErrorKind::from_code(code).unwrap();
            assert_eq!((kind.name(), kind.code()), (name, code));
        }
    }

    #[test]
    fn os_error_message_has_context_and_strerror() {
        let e = Error::os(libc::EBADF, "fstat");
        assert_eq!(e.message(), "fstat: Bad file descriptor");
        assert_eq!(e.code(), -libc::EBADF);
    }
}
