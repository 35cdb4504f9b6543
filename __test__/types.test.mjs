import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

test('index.d.ts is mutually assignable with @upstash/ratelimit 2.2.0 types (tsc --noEmit, strict)', () => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, '__test__', 'types', 'tsconfig.json')], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(result.status, 0, `tsc reported:\n${result.stdout}${result.stderr}`)
})
