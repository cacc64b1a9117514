/**
 * Thrown for every failure pmem2 reports.
 *
 * ```ts
 * try { mapNew(config, source) } catch (e) {
 *   if (e instanceof Pmem2Error && e.code === 'PMEM2_E_MAP_RANGE') { ... }
 * }
 * ```
 */
export declare class Pmem2Error extends Error {
  /**
   * `'PMEM2_E_MAP_RANGE'`, an errno name such as `'EACCES'`, `'ERR_EXTERNAL_BUFFERS_NOT_ALLOWED'`, or
   * `'ERR_PMEM2_TOO_MANY_MAPPINGS'` (2^32 mappings registered at once). A closed union: a
   * misspelt code in a comparison does not compile.
   */
  readonly code: Pmem2ErrorCode
  /** The number libpmem2 returns for the failure: `-100006`, or `-13` for EACCES. */
  readonly errno: number
  /**
   * The file the failure is about, when `mapFile`/`mapFileAsync` was given it by path (as
   * Node's fs errors carry it).
   */
  readonly path?: string
  /** The system call that failed (`'open'`, `'posix_fallocate'`), as Node's fs errors carry it. */
  readonly syscall?: string
}

/** The errno names a `Pmem2Error` reports (Linux's, spelt as Node spells them). */
export type ErrnoCode =
  | 'EPERM' | 'ENOENT' | 'EINTR' | 'EIO' | 'ENXIO' | 'E2BIG' | 'EBADF' | 'EAGAIN' | 'ENOMEM' | 'EACCES'
  | 'EFAULT' | 'EBUSY' | 'EEXIST' | 'EXDEV' | 'ENODEV' | 'ENOTDIR' | 'EISDIR' | 'EINVAL' | 'ENFILE'
  | 'EMFILE' | 'ETXTBSY' | 'EFBIG' | 'ENOSPC' | 'ESPIPE' | 'EROFS' | 'EOVERFLOW' | 'ENOTSUP' | 'ENOSYS'
  | 'ELOOP' | 'ENAMETOOLONG' | 'EDQUOT' | 'EHWPOISON' | 'EUNKNOWN'

/** Every `code` of a `Pmem2Error`: libpmem2's `PMEM2_E_*` names, errno names, and pmem2's own `ERR_*`. */
export type Pmem2ErrorCode =
  | keyof typeof errorCodes
  | ErrnoCode
  | 'ERR_EXTERNAL_BUFFERS_NOT_ALLOWED'
  | 'ERR_PMEM2_TOO_MANY_MAPPINGS'

/**
 * A `MEM_*` flag of `memcpy`, `memmove` and `memset`: a number with a type of its own, so a
 * `PROT_*` value passed as flags does not compile.
 */
export type MemFlag = number & { readonly __pmem2Constant: 'MEM' }
/** A `PROT_*` value of libpmem2 (`1 << 29` .. `1 << 31`, not the kernel's 1, 2, 4). */
export type Protection = number & { readonly __pmem2Constant: 'PROT' }
/**
 * The type of a `flags` argument: any number but a `PROT_*` value. Combine flags with `|`
 * (`MEM_NONTEMPORAL | MEM_NODRAIN`): TypeScript types the result as `number`, which passes;
 * a lone `PROT_READ` keeps its `Protection` type and is refused.
 */
export type MemFlags<F extends number> = F & (F extends Protection ? never : unknown)
/**
 * The type of `setProtection`'s argument: any number but a `MEM_*` flag or the kernel's
 * `PROT_*` values 1..7 written as literals (pmem2 takes libpmem2's values; at run time they
 * are a RangeError). `PROT_READ | PROT_WRITE` is a `number` and passes.
 */
export type ProtectionArg<P extends number> = P & (P extends MemFlag | 1 | 2 | 3 | 4 | 5 | 6 | 7 ? never : unknown)

/** `PMEM2_PROT_EXEC`: the mapping may be executed. */
export declare const PROT_EXEC: 536870912 & Protection
/** `PMEM2_PROT_READ`: the mapping may be read. */
export declare const PROT_READ: 1073741824 & Protection
/** `PMEM2_PROT_WRITE`: the mapping may be written. */
export declare const PROT_WRITE: 2147483648 & Protection
/** `PMEM2_PROT_NONE`: no access. */
export declare const PROT_NONE: 0 & Protection

/** `PMEM2_F_MEM_NODRAIN`: skip the final drain (fence). */
export declare const MEM_NODRAIN: 1 & MemFlag
/** `PMEM2_F_MEM_NONTEMPORAL`: use non-temporal stores. */
export declare const MEM_NONTEMPORAL: 2 & MemFlag
/** `PMEM2_F_MEM_TEMPORAL`: use temporal stores followed by flushes. */
export declare const MEM_TEMPORAL: 4 & MemFlag
/** `PMEM2_F_MEM_WC`: write-combining (non-temporal) stores. */
export declare const MEM_WC: 8 & MemFlag
/** `PMEM2_F_MEM_WB`: write-back (temporal) stores. */
export declare const MEM_WB: 16 & MemFlag
/** `PMEM2_F_MEM_NOFLUSH`: do not flush (implies NODRAIN). */
export declare const MEM_NOFLUSH: 32 & MemFlag

/** Every `PMEM2_E_*` name with its number, identical to libpmem2's. */
export declare const errorCodes: {
  readonly PMEM2_E_UNKNOWN: -100000
  readonly PMEM2_E_NOSUPP: -100001
  readonly PMEM2_E_FILE_HANDLE_NOT_SET: -100003
  readonly PMEM2_E_INVALID_FILE_HANDLE: -100004
  readonly PMEM2_E_INVALID_FILE_TYPE: -100005
  readonly PMEM2_E_MAP_RANGE: -100006
  readonly PMEM2_E_MAPPING_EXISTS: -100007
  readonly PMEM2_E_GRANULARITY_NOT_SET: -100008
  readonly PMEM2_E_GRANULARITY_NOT_SUPPORTED: -100009
  readonly PMEM2_E_OFFSET_OUT_OF_RANGE: -100010
  readonly PMEM2_E_OFFSET_UNALIGNED: -100011
  readonly PMEM2_E_INVALID_ALIGNMENT_FORMAT: -100012
  readonly PMEM2_E_INVALID_ALIGNMENT_VALUE: -100013
  readonly PMEM2_E_INVALID_SIZE_FORMAT: -100014
  readonly PMEM2_E_LENGTH_UNALIGNED: -100015
  readonly PMEM2_E_MAPPING_NOT_FOUND: -100016
  readonly PMEM2_E_BUFFER_TOO_SMALL: -100017
  readonly PMEM2_E_SOURCE_EMPTY: -100018
  readonly PMEM2_E_INVALID_SHARING_VALUE: -100019
  readonly PMEM2_E_SRC_DEVDAX_PRIVATE: -100020
  readonly PMEM2_E_INVALID_ADDRESS_REQUEST_TYPE: -100021
  readonly PMEM2_E_ADDRESS_UNALIGNED: -100022
  readonly PMEM2_E_ADDRESS_NULL: -100023
  readonly PMEM2_E_DEEP_FLUSH_RANGE: -100024
  readonly PMEM2_E_INVALID_REGION_FORMAT: -100025
  readonly PMEM2_E_DAX_REGION_NOT_FOUND: -100026
  readonly PMEM2_E_INVALID_DEV_FORMAT: -100027
  readonly PMEM2_E_CANNOT_READ_BOUNDS: -100028
  readonly PMEM2_E_NO_BAD_BLOCK_FOUND: -100029
  readonly PMEM2_E_LENGTH_OUT_OF_RANGE: -100030
  readonly PMEM2_E_INVALID_PROT_FLAG: -100031
  readonly PMEM2_E_NO_ACCESS: -100032
  readonly PMEM2_E_VM_RESERVATION_NOT_EMPTY: -100033
  readonly PMEM2_E_MAP_EXISTS: -100034
  readonly PMEM2_E_FILE_DESCRIPTOR_NOT_SET: -100035
  readonly PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED: -100036
  readonly PMEM2_E_IO_FAIL: -100037
}

export declare interface Mapping {
  /** Unmaps at the end of a `using` block. */
  [Symbol.dispose](): void
  /**
   * At the end of an `await using` block: waits until every `persistAsync` started on this
   * mapping has settled (their rejections stay theirs), then unmaps.
   */
  [Symbol.asyncDispose](): Promise<void>
  /**
   * Makes `[offset, offset+length)` durable: msync for PAGE, cache-line flushes and a fence
   * for CACHE_LINE, a fence for BYTE. A range outside the mapping is a RangeError.
   * `persist()` covers the whole mapping; `persist(offset)` covers `offset` to the end.
   */
  persist(offset?: number | bigint, length?: number | bigint): void
  /**
   * Flushes `[offset, offset+length)` without waiting; `drain()` completes it. As with
   * `persist`, an omitted offset is 0 and an omitted length reaches the end of the mapping.
   */
  flush(offset?: number | bigint, length?: number | bigint): void
  /** Waits for earlier flushes to complete. */
  drain(): void
  /**
   * Copies `src` to `destOffset` and makes it durable (`pmem2_memcpy_fn`): non-temporal stores
   * from 256 bytes, flushes and a drain, or msync on PAGE mappings. `flags` are `MEM_*`
   * constants (e.g. `MEM_NONTEMPORAL | MEM_NODRAIN`).
   */
  memcpy<F extends number>(destOffset: number | bigint, src: Uint8Array, flags?: MemFlags<F>): void
  /** As `memcpy`; `src` may overlap the destination (a view of this mapping). */
  memmove<F extends number>(destOffset: number | bigint, src: Uint8Array, flags?: MemFlags<F>): void
  /** Fills `length` bytes at `destOffset` with `value` and makes them durable (`pmem2_memset_fn`). */
  memset<F extends number>(destOffset: number | bigint, value: number, length: number | bigint, flags?: MemFlags<F>): void
  /** Copies `data` to `offset` and persists it, in one call (a `memcpy` with no flags). */
  write(offset: number | bigint, data: Uint8Array): void
  /** Flushes every `[offset, length]` range, then drains once; all ranges are checked first. */
  persistRanges(ranges: ReadonlyArray<readonly [offset: number | bigint, length: number | bigint]>): void
}

/**
 * Options of `mapFile` and `mapFileAsync`. Any other key is a `TypeError` with code
 * `ERR_INVALID_ARG_VALUE` (`Unknown option 'sise'`): a misspelt option is never ignored.
 */
export interface MapFileOptions {
  /** Make the file at least this many bytes, allocating its blocks (`posix_fallocate`). */
  size?: number | bigint
  /**
   * Create the file if it does not exist; `size` is then required (an empty file cannot be
   * mapped), and without it nothing is created (`EINVAL`).
   */
  create?: boolean
  /** The coarsest granularity the program can work with (default `Granularity.Page`). */
  granularity?: Granularity
  /**
   * Open read-only and map with `PROT_READ`: `write()` throws, `read()` copies out, and
   * `buffer` is a private copy-on-write alias (a store changes private memory, never the file).
   */
  readOnly?: boolean
  /**
   * `Sharing.Shared` (default) or `Sharing.Private` (copy-on-write: the file is opened
   * read-only unless `create` or `size` must change it).
   */
  sharing?: Sharing
  /** Where the mapping starts in the file: a multiple of the page size (default 0). */
  offset?: number | bigint
  /** How many bytes to map from `offset` (default: to the end of the file). */
  length?: number | bigint
}
