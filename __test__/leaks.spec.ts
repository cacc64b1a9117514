// Leaks valgrind can see and the other tests cannot: what a Node environment (the main thread, a
// Worker) that loads pmem2 leaves behind when it goes away.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { prerequisite, runs, tempDir } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const hasValgrind = prerequisite('the valgrind leak check', runs('valgrind', '--version'), 'apt-get install valgrind')

/** The addon built with symbols (the release build is stripped), copied as a loadable .node. */
function debugAddon(): string {
  execFileSync('cargo', ['build', '-p', 'pmem2-node', '--locked', '--quiet'], { cwd: root, stdio: 'inherit' })
  const addon = path.join(tempDir(), 'pmem2.linux-x64-gnu.node')
  fs.copyFileSync(path.join(root, 'target', 'debug', 'libpmem2_node.so'), addon)
  return addon
}

/** memcheck's "definitely lost" records of a run, each as its text (size line and stack). */
function definitelyLost(script: string, args: string[], addon: string): string[] {
  const run = spawnSync(
    'valgrind',
    ['--leak-check=full', '--show-leak-kinds=definite', '--num-callers=30', process.execPath, script, ...args],
    { env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: addon }, encoding: 'utf8' },
  )
  if (run.status !== 0) throw new Error(`valgrind run failed (${run.status}):\n${run.stderr}`)
  const text = run.stderr.replace(/^==\d+== ?/gm, '')
  return text.split(/\n\n/).filter((record) => /are definitely lost/.test(record))
}

if (hasValgrind) {
  // The valgrind run happens in a hook, where any failure fails the suite: only the
  // assertion about the bug itself is expected to fail.
  let leaks: string[] = []
  test.before(() => {
    leaks = definitelyLost(path.join(root, '__test__', 'fixtures', 'load-in-workers.cjs'), ['1'], debugAddon())
  })

  // `init` (src/lib.rs) keeps `Pmem2Error` and `Buffer.allocUnsafeSlow` in strong napi references
  // in the instance data; Node does not free user-created references when an environment is torn
  // down, so the instance data's finalizer deletes them. Found by valgrind (it leaked 80 bytes per
  // environment: without bound for a program that starts workers). napi-rs's own class references
  // (`register_classes`, upstream) still leak and have no pmem2_node frame.
  test('an environment that loads pmem2 leaks no napi reference of pmem2 (valgrind)', (t) => {
    const ours = leaks.filter((record) => /pmem2_node::/.test(record))
    t.deepEqual(ours, [], `definitely lost with a pmem2_node frame:\n${ours.join('\n\n')}`)
  })
}
