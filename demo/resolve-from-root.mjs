// Lets code under examples/ run from this repository without `npm install` in the example.
//
// An example is a standalone project: it imports 'hono' and 'ratelimit-native' by name, exactly
// as a user's app would. From inside the repository, 'hono' is found anyway (Node walks up to
// the root node_modules), but 'ratelimit-native' is not: the example's own package.json makes
// it a separate package scope, so Node does not self-reference the root package, and no
// node_modules folder contains it. This loader hook keeps Node's normal resolution and only adds
// a fallback: when a bare import from under examples/ is not found, it is resolved again as if
// imported from the repository root — where 'ratelimit-native' is the root package itself
// (through its "exports") and other names come from the root node_modules. After
// `npm install` inside an example, everything resolves normally and the fallback is unused.
//
// Usage (before importing anything from examples/, hence the dynamic import):
//   import { resolveExamplesFromRoot } from '../demo/resolve-from-root.mjs'
//   resolveExamplesFromRoot()
//   const { createApp } = await import('../examples/hono/src/app.mjs')

import { register } from 'node:module'

const ROOT = new URL('../', import.meta.url)

/** Installs the fallback (once per process). Needs Node >= 20.6 (`module.register`). */
export function resolveExamplesFromRoot() {
  if (globalThis.__ratelimitNativeExamplesHook) return
  globalThis.__ratelimitNativeExamplesHook = true
  register(import.meta.url, {
    data: { examples: new URL('examples/', ROOT).href, root: new URL('package.json', ROOT).href },
  })
}

// ---- Loader hooks: this same file, run by Node on its loader thread ----

let examplesUrl
let rootParentUrl

export function initialize(data) {
  examplesUrl = data?.examples
  rootParentUrl = data?.root
}

const isBare = (specifier) => !/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(specifier)

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    const fromExample = examplesUrl && context.parentURL?.startsWith(examplesUrl)
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !fromExample || !isBare(specifier)) throw error
    // A parent inside the root package scope: 'ratelimit-native' resolves through the root
    // package.json "exports" (self-reference), everything else through the root node_modules.
    return nextResolve(specifier, { ...context, parentURL: rootParentUrl })
  }
}
