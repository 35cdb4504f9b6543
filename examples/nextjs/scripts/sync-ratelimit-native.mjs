#!/usr/bin/env node
// Keeps node_modules/ratelimit-native in step with this repository's working tree.
//
// Only needed because this example uses the package straight from the repo ("file:../.." with
// install-links=true, see README.md). npm copies the package's "files" once, at install time, and
// never refreshes them; and the root package's "files" list leaves out the platform binary
// (ratelimit-native.<platform>.node), which a published package gets from its per-platform
// optional dependency instead. This script copies that binary, and any file changed since, from
// the repo root. It runs on postinstall, predev, prebuild and prestart, and copies only what
// differs (size or modification time), so it is cheap when nothing changed.
//
// With a published ratelimit-native you do not need it: delete it, its scripts and .npmrc.
//
// Usage: node scripts/sync-ratelimit-native.mjs [--warn-only]

import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), "..");
const REPO = join(EXAMPLE, "..", "..");
const TARGET = join(EXAMPLE, "node_modules", "ratelimit-native");
const warnOnly = process.argv.includes("--warn-only");

function fail(message) {
  process.stderr.write(`[sync-ratelimit-native] ${message}\n`);
  process.exit(warnOnly ? 0 : 1);
}

/** Every file under `path` (a file or a directory), as paths relative to the repo root. */
function listFiles(path) {
  const full = join(REPO, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((entry) => listFiles(join(path, entry)));
}

const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
if (pkg.name !== "ratelimit-native") fail(`${REPO} is not the ratelimit-native repository`);
if (!existsSync(TARGET)) fail("node_modules/ratelimit-native is missing: run `npm install` first");
if (lstatSync(TARGET).isSymbolicLink()) {
  fail(
    "node_modules/ratelimit-native is a symlink; Next.js bundles a symlinked package instead of treating it " +
      "as external. Keep install-links=true in .npmrc, delete node_modules and run `npm install` again",
  );
}

const binaries = readdirSync(REPO).filter((f) => /^ratelimit-native\..+\.node$/.test(f));
if (binaries.length === 0) {
  fail("the native addon is not built yet: run `npm run setup` in the repository root (needs a Rust toolchain)");
}

const files = ["package.json", ...pkg.files.flatMap(listFiles), ...binaries];
let copied = 0;
for (const file of files) {
  const from = join(REPO, file);
  const to = join(TARGET, file);
  const src = statSync(from);
  if (existsSync(to)) {
    const dst = statSync(to);
    if (dst.size === src.size && Math.abs(dst.mtimeMs - src.mtimeMs) < 1) continue;
  }
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  utimesSync(to, src.atime, src.mtime);
  copied++;
}
if (copied > 0) {
  process.stderr.write(`[sync-ratelimit-native] copied ${copied} file(s) from ${relative(EXAMPLE, REPO) || "."} into node_modules/ratelimit-native\n`);
}
