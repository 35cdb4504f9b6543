// Newest modification time under the given path (a file, or a folder recursively, skipping
// target/ and node_modules/): how setup.mjs and build-wasm.mjs tell a build is stale.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

export function newestMtime(path) {
  if (!existsSync(path)) return 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) {
    if (entry === 'target' || entry === 'node_modules') continue
    newest = Math.max(newest, newestMtime(join(path, entry)))
  }
  return newest
}
