import test from 'ava'
import { createRequire } from 'node:module'

import * as esm from '../index.mjs'

const require = createRequire(import.meta.url)

test('ESM and CommonJS entries export the same names and values', (t) => {
  const cjs = require('../index.js')
  const names = Object.keys(cjs)
  t.deepEqual(Object.keys(esm).filter((name) => name !== 'default').sort(), names.sort())
  for (const name of names) t.is((esm as Record<string, unknown>)[name], cjs[name], name)
})
