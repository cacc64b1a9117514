// ES module entry: the generated CommonJS loader (index.js, through index.cjs, which names the
// platform package to install when no binary loads) with named exports.
// __test__/esm.spec.ts checks that this list names every export of index.js.
import binding from './index.cjs'

export const {
  Config,
  errorCodes,
  Granularity,
  map,
  mapAsync,
  mapFile,
  mapFileAsync,
  mapNew,
  Mapping,
  MEM_NODRAIN,
  MEM_NOFLUSH,
  MEM_NONTEMPORAL,
  MEM_TEMPORAL,
  MEM_WB,
  MEM_WC,
  platformInfo,
  Pmem2Error,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Sharing,
  Source,
} = binding
export default binding
