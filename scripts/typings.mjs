#!/usr/bin/env node
// Runs after `napi build`: removes from index.d.ts what napi-rs declares but is not pmem2's API.
// `__napiBindingTarget` is the generated loader's own marker (which artifact it loaded); the
// loader still sets it, index.cjs makes it non-enumerable and index.mjs does not export it.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.d.ts')
const text = fs.readFileSync(file, 'utf8')
// The declaration with the doc comment right above it.
const declaration = /\n(\/\*\*(?:(?!\*\/)[\s\S])*\*\/\n)?export declare const __napiBindingTarget:[^\n]*\n/
const stripped = text.replace(declaration, '')
if (/__napiBindingTarget/.test(stripped)) {
  throw new Error('index.d.ts: __napiBindingTarget is declared in a form scripts/typings.mjs does not recognise')
}
if (stripped !== text) fs.writeFileSync(file, stripped)
