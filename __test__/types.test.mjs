import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
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

// --- Code that extends the limiters or writes its own algorithm, as a user's project compiles it:
// the package installed in node_modules, with and without @upstash/redis (an optional peer
// dependency whose types give `ctx.redis` upstream's type), skipLibCheck off.

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** A throwaway project outside the repository with ratelimit-native's types installed (and
 * @upstash/redis' when `withUpstashRedis`), compiling `file` from __test__/types/. */
function compileAsUser(file, { withUpstashRedis, moduleResolution, extraPackages = [], types = [] }) {
  const dir = mkdtempSync(join(tmpdir(), 'rln-types-'))
  try {
    const pkg = join(dir, 'node_modules', 'ratelimit-native')
    mkdirSync(pkg, { recursive: true })
    for (const name of ['package.json', 'index.d.ts', 'lib/otel.d.ts', 'lib/middleware/options.d.ts', 'lib/middleware/hono.d.ts', 'lib/middleware/express.d.ts', 'lib/middleware/fastify.d.ts', 'lib/middleware/next.d.ts']) {
      mkdirSync(dirname(join(pkg, name)), { recursive: true })
      copyFileSync(join(ROOT, name), join(pkg, name))
    }
    for (const name of extraPackages) {
      mkdirSync(dirname(join(dir, 'node_modules', name)), { recursive: true })
      symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name), 'dir')
    }
    if (withUpstashRedis) {
      mkdirSync(join(dir, 'node_modules', '@upstash'), { recursive: true })
      symlinkSync(join(ROOT, 'node_modules', '@upstash', 'redis'), join(dir, 'node_modules', '@upstash', 'redis'), 'dir')
    }
    copyFileSync(join(ROOT, '__test__', 'types', file), join(dir, 'main.ts'))
    const nodeStyle = moduleResolution === 'node'
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: nodeStyle ? 'commonjs' : moduleResolution === 'node16' ? 'node16' : 'esnext',
          moduleResolution,
          skipLibCheck: false,
          types,
        },
        files: ['main.ts'],
      }),
    )
    const result = spawnSync(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 })
    return { status: result.status, output: `${result.stdout}${result.stderr}` }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

for (const moduleResolution of ['bundler', 'node']) {
  for (const withUpstashRedis of [true, false]) {
    const setup = `${withUpstashRedis ? 'with' : 'without'} @upstash/redis, moduleResolution ${moduleResolution}`
    test(`a subclass reading every protected member and a custom algorithm compile (${setup})`, () => {
      const { status, output } = compileAsUser('subclass.ts', { withUpstashRedis, moduleResolution })
      assert.equal(status, 0, `tsc reported:\n${output}`)
    })
  }
  test(`a custom algorithm using @upstash/redis commands on ctx.redis compiles with @upstash/redis installed (moduleResolution ${moduleResolution})`, () => {
    const { status, output } = compileAsUser('upstash-commands.ts', { withUpstashRedis: true, moduleResolution })
    assert.equal(status, 0, `tsc reported:\n${output}`)
  })
  test(`without @upstash/redis the package still type-checks, and ctx.redis has only the commands every client has (moduleResolution ${moduleResolution})`, () => {
    const { status, output } = compileAsUser('upstash-commands.ts', { withUpstashRedis: false, moduleResolution })
    assert.notEqual(status, 0)
    // The only complaints are about those commands in the user's file, none in our index.d.ts.
    const errors = output.split('\n').filter((line) => /error TS/.test(line))
    assert.ok(errors.length > 0, output)
    for (const line of errors) {
      assert.match(line, /main\.ts\(\d+,\d+\): error TS(2339|2551): Property '(incrby|hset|pipeline|pttl|incr|expire|smembers|del)' does not exist/, output)
    }
  })
}

// The framework subpaths (ratelimit-native/hono, /express, /fastify, /otel), resolved through the
// package's exports as bundlers and Node.js resolve them, against the frameworks' own types; and
// ioredis / node-redis clients as `redis:`, with their own types.
for (const moduleResolution of ['bundler', 'node16']) {
  test(`the middleware subpaths type-check in a user's project (moduleResolution ${moduleResolution})`, () => {
    const { status, output } = compileAsUser('middleware.ts', {
      withUpstashRedis: false,
      moduleResolution,
      extraPackages: ['hono', 'fastify', '@opentelemetry/api', '@types/node', 'ioredis', 'redis', '@redis', ...typeDependencies('fastify'), ...typeDependencies('ioredis')],
      types: ['node'],
    })
    assert.equal(status, 0, `tsc reported:\n${output}`)
  })
}

/** The packages a package's own .d.ts files may import (they must resolve from the user's project). */
function typeDependencies(name) {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'))
  return Object.keys(pkg.dependencies ?? {}).filter((name) => existsSync(join(ROOT, 'node_modules', name)))
}
