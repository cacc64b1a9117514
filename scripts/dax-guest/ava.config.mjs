// ava inside the real-DAX guests (tier.mjs): the project's configuration from package.json,
// without ava's cache, which would otherwise be written into node_modules/.cache from the guest.
import fs from 'node:fs'

const { ava } = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))

export default { ...ava, cache: false }
