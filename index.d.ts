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

/**
 * A reusable description of a mapping (`struct pmem2_config`).
 *
 * ```ts
 * const config = new Config()
 * config.setRequiredStoreGranularity(Granularity.Page)
 * config.setOffset(0)
 * config.setLength(4096n)
 * ```
 */
export declare class Config {
  /** Offset 0, length 0 (to the end), shared, read-write, granularity not set. */
  constructor()
  /**
   * The coarsest granularity the program can work with; mapping fails with
   * `PMEM2_E_GRANULARITY_NOT_SUPPORTED` if the platform only offers a coarser one.
   */
  setRequiredStoreGranularity(granularity: Granularity): void
  /**
   * Where the mapping starts in the source: a multiple of `source.alignment`, at most
   * 2^63-1 (`PMEM2_E_OFFSET_OUT_OF_RANGE` above).
   */
  setOffset(offset: number | bigint): void
  /** How many bytes to map; 0 maps to the end of the source. */
  setLength(length: number | bigint): void
  /** `Sharing.Shared` (the default) or `Sharing.Private`. */
  setSharing(sharing: Sharing): void
  /**
   * A combination of `PROT_READ`, `PROT_WRITE` and `PROT_EXEC`, or `PROT_NONE`.
   * `PROT_READ | PROT_WRITE` (negative in JavaScript) is accepted. These are libpmem2's
   * values (1 << 29 .. 1 << 31): the kernel's 1, 2, 3 … 7 are a `RangeError` saying so (code
   * `PMEM2_E_INVALID_PROT_FLAG`); other unknown bits a `Pmem2Error` with that code.
   */
  setProtection<P extends number>(protection: ProtectionArg<P>): void
  /**
   * Seed form (API 1.0): the file `map(config)` maps. Not duplicated: keep it open
   * until `map` returns.
   */
  setFd(fd: number): void
  /** Seed form: the size of the file set with `setFd` (`PMEM2_E_FILE_HANDLE_NOT_SET` without one). */
  getFileSize(): number
}

/**
 * A mapped range of a file or of anonymous memory.
 *
 * ```ts
 * const mapping = mapNew(config, source)
 * mapping.buffer.write('hello', 0)
 * mapping.persist(0, 5)
 * mapping.unmap()
 * ```
 */
export declare class Mapping {
  /**
   * `true` once `unmap()` (or `delete()`, or disposal) ran: every other member then throws
   * `PMEM2_E_MAPPING_NOT_FOUND`, this one never throws.
   */
  get unmapped(): boolean
  /** The start address (2 MiB aligned) as a bigint. */
  get address(): bigint
  /** The mapped length in bytes. */
  get size(): number
  /** The effective store granularity: what `persist` does to make stores durable. */
  get storeGranularity(): Granularity
  /** Whether the kernel granted MAP_SYNC (a DAX file). */
  get mapSync(): boolean
  /** The sharing mode the mapping was made with. */
  get sharing(): Sharing
  /** The protection the mapping was made with (`PROT_*` bits). */
  get protection(): number
  /**
   * How `persist` makes stores durable: `'clwb'`, `'clflushopt'` or `'clflush'` (CACHE_LINE),
   * `'msync'` (PAGE), or `'none'` (BYTE: a fence suffices).
   */
  get flushMethod(): 'clwb' | 'clflushopt' | 'clflush' | 'dc cvap' | 'dc cvac' | 'msync' | 'none'
  /**
   * Like `persist`, on the libuv thread pool: PAGE persists (msync) do not block the event
   * loop. Rejects with the same `Pmem2Error`s. The mapping stays mapped until the promise
   * settles, even if the Mapping object is collected meanwhile. Without arguments it covers
   * the whole mapping; without `length`, `offset` to the end.
   */
  persistAsync(offset?: number | bigint, length?: number | bigint): Promise<void>
  /**
   * A zero-copy Buffer over the mapped bytes (the same Buffer on every access).
   *
   * On a read-only file mapping (`readOnly: true`, `PROT_READ`) it is a private
   * copy-on-write alias of the same file range: reads see the file (a page not stored to
   * through it shows the file's current contents), a store changes a private copy of its
   * page, never the file, and that page no longer follows later changes of the file. No
   * store through it can reach the file or kill the process.
   *
   * Throws `PMEM2_E_NO_ACCESS` for a mapping without `PROT_READ`, or read-only on device
   * DAX (no private mappings: use `read()`), and `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED` where
   * the runtime forbids external memory.
   */
  get buffer(): Buffer
  /**
   * A zero-copy Buffer over `[offset, offset+length)`: the way to reach mappings larger
   * than the largest Buffer the runtime allows. Detached by `unmap()` like `buffer`; over the
   * private alias, like `buffer`, on a read-only mapping.
   */
  view(offset: number | bigint, length: number | bigint): Buffer
  /**
   * Copies `length` bytes at `offset` into a new Buffer (works for read-only mappings and
   * runtimes without external buffers). A length above `buffer.constants.MAX_LENGTH` is a
   * `RangeError` with code `ERR_BUFFER_TOO_LARGE`, before anything is allocated or copied.
   */
  read(offset: number | bigint, length: number | bigint): Buffer
  /**
   * Flushes `[offset, offset+length)` to the deepest persistence domain (`pmem2_deep_flush`).
   * Throws `PMEM2_E_DEEP_FLUSH_RANGE` outside the mapping, `PMEM2_E_NOSUPP` for anonymous
   * mappings.
   */
  deepFlush(offset: number | bigint, length: number | bigint): void
  /**
   * Unmaps now: every Buffer over the mapping is detached (length 0) and every later
   * call throws `PMEM2_E_MAPPING_NOT_FOUND`. The file is released at once; if a buffer's
   * memory escaped detaching (moved by `transfer()`, a BYOB stream read or `postMessage`),
   * its address range stays reserved, as anonymous memory, until that memory is collected.
   * A second call does nothing.
   */
  unmap(): void
  /** The same as `unmap()` (libpmem2's `pmem2_map_delete`). */
  delete(): void
}

/**
 * The data source of a mapping: an open file descriptor or anonymous memory.
 *
 * ```ts
 * const fd = fs.openSync('data.bin', 'r+')
 * const source = Source.fromFd(fd)
 * console.log(source.size, source.alignment)
 * ```
 */
export declare class Source {
  /**
   * A source for an open file descriptor (regular file or device DAX). The fd is not
   * duplicated or closed; keep it open until `mapNew` returns.
   *
   * Throws `Pmem2Error` `PMEM2_E_INVALID_FILE_HANDLE` for a negative, closed or write-only
   * fd and `PMEM2_E_INVALID_FILE_TYPE` for directories, FIFOs, sockets and other devices.
   */
  static fromFd(fd: number): Source
  /** An anonymous, zero-filled source of `size` bytes. */
  static fromAnon(size: number | bigint): Source
  /** The size in bytes: the file size (read now), device DAX size, or anonymous size. */
  get size(): number
  /** `'regular'` or `'devdax'` for a file source, `null` for an anonymous one. */
  get fileType(): 'regular' | 'devdax' | null
  /** The alignment mapping offsets and lengths must respect (the page size for files). */
  get alignment(): number
}

/** Store granularity, from the finest to the coarsest (`enum pmem2_granularity`). */
export declare enum Granularity {
  /** Stores are durable once they leave the CPU (eADR, private or anonymous mappings). */
  Byte = 0,
  /** Cache lines must be flushed: DAX with MAP_SYNC. */
  CacheLine = 1,
  /** Pages must be written back with msync: the page cache. */
  Page = 2,
}

/**
 * Seed form (libpmem2 API 1.0): maps the file set with `config.setFd(fd)`.
 *
 * An unset granularity means PAGE and an unset protection follows the fd's access mode.
 * Throws `PMEM2_E_FILE_HANDLE_NOT_SET` without an fd, `PMEM2_E_INVALID_FILE_HANDLE` for a
 * bad fd, `PMEM2_E_MAP_RANGE` for a range past the end of the file, and `-errno` codes
 * (such as `EACCES` for an append-only file) for other mmap failures.
 */
export declare function map(config: Config): Mapping

/** `mapNew` on the libuv thread pool. Keep the source's fd open until the promise settles. */
export declare function mapAsync(config: Config, source: Source): Promise<Mapping>

/**
 * Opens `path` (creating it and allocating `size` bytes when asked), maps the whole file (or
 * the window `offset`/`length`) and closes the fd. Defaults: existing file, read-write,
 * shared, PAGE granularity. An unknown option key is a `TypeError`.
 *
 * ```ts
 * const log = mapFile('/mnt/pmem/log', { size: 1 << 20, create: true })
 * ```
 */
export declare function mapFile(path: string, options?: MapFileOptions): Mapping

/** `mapFile` on the libuv thread pool. Rejects with the same `Pmem2Error`s. */
export declare function mapFileAsync(path: string, options?: MapFileOptions): Promise<Mapping>

/**
 * Modern form (libpmem2 1.12): maps `source` as `config` describes, with libpmem2's order of
 * checks and error codes.
 */
export declare function mapNew(config: Config, source: Source): Mapping

/** What pmem2 chose for this CPU and what the platform reports (eADR, page size). */
export declare function platformInfo(): PlatformInfo

/** The instructions pmem2 chose for this process and what the platform reports. */
export interface PlatformInfo {
  /** Cache-line flush instruction for CACHE_LINE mappings: `'clwb'`, `'clflushopt'`, `'clflush'`, … */
  flushInstruction: string
  /** Copy implementation of memcpy/memmove/memset: `'avx512f'`, `'avx'`, `'sse2'`, `'generic'`, `'libc'`. */
  copyIsa: string
  /** Whether non-temporal copies use MOVDIR64B (opt-in with `PMEM_MOVDIR64B`). */
  movdir64b: boolean
  /** Copies of at least this many bytes use non-temporal stores when no flag decides. */
  movntThreshold: number
  /** Whether every nd region reports `cpu_cache` persistence (eADR): BYTE granularity on DAX. */
  eadr: boolean
  /** The system page size. */
  pageSize: number
  /** The sysfs root pmem2 reads (`/sys`, or `PMEM2_SYSFS_ROOT`). */
  sysfsRoot: string
}

/** Whether writes reach the file (`enum pmem2_sharing_type`). */
export declare enum Sharing {
  /** Writes go to the file (MAP_SHARED). */
  Shared = 0,
  /** Copy-on-write; the file never changes (MAP_PRIVATE). */
  Private = 1,
}
