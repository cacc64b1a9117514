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
   * `'ERR_PMEM2_TOO_MANY_MAPPINGS'` (2^32 mappings registered at once).
   */
  readonly code: string
  /** The number libpmem2 returns for the failure: `-100006`, or `-13` for EACCES. */
  readonly errno: number
}

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
   * Makes `[offset, offset+length)` durable: msync for PAGE, cache-line flushes and a fence
   * for CACHE_LINE, a fence for BYTE. A range outside the mapping is a RangeError.
   */
  persist(offset: number | bigint, length: number | bigint): void
  /** Flushes `[offset, offset+length)` without waiting; `drain()` completes it. */
  flush(offset: number | bigint, length: number | bigint): void
  /** Waits for earlier flushes to complete. */
  drain(): void
  /**
   * Copies `src` to `destOffset` and makes it durable (`pmem2_memcpy_fn`): non-temporal stores
   * from 256 bytes, flushes and a drain, or msync on PAGE mappings. `flags` are `MEM_*`
   * constants (e.g. `MEM_NONTEMPORAL | MEM_NODRAIN`).
   */
  memcpy(destOffset: number | bigint, src: Uint8Array, flags?: number): void
  /** As `memcpy`; `src` may overlap the destination (a view of this mapping). */
  memmove(destOffset: number | bigint, src: Uint8Array, flags?: number): void
  /** Fills `length` bytes at `destOffset` with `value` and makes them durable (`pmem2_memset_fn`). */
  memset(destOffset: number | bigint, value: number, length: number | bigint, flags?: number): void
  /** Copies `data` to `offset` and persists it, in one call (a `memcpy` with no flags). */
  write(offset: number | bigint, data: Uint8Array): void
  /** Flushes every `[offset, length]` range, then drains once; all ranges are checked first. */
  persistRanges(ranges: ReadonlyArray<readonly [offset: number | bigint, length: number | bigint]>): void
}

/** Options of `mapFile` and `mapFileAsync`. */
export interface MapFileOptions {
  /** Make the file at least this many bytes, allocating its blocks (`posix_fallocate`). */
  size?: number | bigint
  /** Create the file if it does not exist. */
  create?: boolean
  /** The coarsest granularity the program can work with (default `Granularity.Page`). */
  granularity?: Granularity
  /** Open read-only and map with `PROT_READ` (no `buffer`; use `read()`). */
  readOnly?: boolean
  /** `Sharing.Shared` (default) or `Sharing.Private`. */
  sharing?: Sharing
}
