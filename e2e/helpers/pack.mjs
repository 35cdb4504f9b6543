// The package as users install it: `npm pack` of the root package and of the host's platform
// package (the freshly built addon copied into npm/<platform>/ first), for tests that install
// the tarballs into an app of their own (Turbopack does not follow a package linked from
// outside the app).

import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

export function hostSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function npmPack(dir, dest) {
  const result = spawnSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', timeout: 120_000 })
  if (result.status !== 0) throw new Error(`npm pack in ${dir} failed: ${result.stderr}`)
  const [info] = JSON.parse(result.stdout.slice(result.stdout.indexOf('[')))
  return join(dest, info.filename)
}

/** `{ root, platform, platformName }`: the two tarballs, packed into `dest`. */
export function packTarballs(dest) {
  const suffix = hostSuffix()
  const binaryName = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).napi.binaryName
  const node = `${binaryName}.${suffix}.node`
  const platformDir = join(ROOT, 'npm', suffix)
  copyFileSync(join(ROOT, node), join(platformDir, node))
  return { root: npmPack(ROOT, dest), platform: npmPack(platformDir, dest), platformName: `${binaryName}-${suffix}` }
}
