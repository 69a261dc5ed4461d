#!/usr/bin/env node
// The `kmip-edge` command (dist/kmip-edge.mjs, copied here by scripts/build.mjs): runs the bundle,
// dist/kmip-edge.cjs, with V8's code cache made at build time, dist/kmip-edge.cjs.cache.
//
// Why (issue #15, cold start): Node 20 compiles a script anew at every start — the 0.95 MB bundle's
// top level, then each function the start calls, was ~40% of `kmip-edge run`'s time to ready.
// Node 22 has module.enableCompileCache for this; on Node 20 the way is vm.Script's cachedData,
// which needs CommonJS, hence the .cjs bundle. The cache holds the bytecode of the functions that a
// `run` to ready and its shutdown compiled (scripts/build.mjs trains it so). V8 checks it against
// its own version, flags and the source, and rejects it on any difference — another Node, a V8
// flag, a rebuilt bundle — and then compiles as without it: slower, never different.
//
// With --enable-source-maps (stack traces in src/*.ts terms, for debugging) the bundle is loaded as
// a plain CommonJS module instead, without the cache: Node maps the stacks of what it loads itself,
// not those of a vm.Script.
//
// KMIP_EDGE_CODE_CACHE_OUT=FILE (the build's training run only) writes the cache at exit.
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const bundle = join(dirname(fileURLToPath(import.meta.url)), 'kmip-edge.cjs');
// What happened to the cache, for `kmip-edge bench footprint` and the launcher's test.
const CODE_CACHE = Symbol.for('kmip-edge.codeCache');

if (process.sourceMapsEnabled) {
  globalThis[CODE_CACHE] = 'unused (source maps)';
  createRequire(import.meta.url)(bundle);
} else {
  let cachedData;
  try {
    cachedData = readFileSync(`${bundle}.cache`);
  } catch {
    // no cache beside the bundle: compiled as Node would
  }
  const script = new Script(Module.wrap(readFileSync(bundle, 'utf8')), { filename: bundle, cachedData });
  globalThis[CODE_CACHE] = cachedData === undefined ? 'missing' : script.cachedDataRejected ? 'rejected' : 'accepted';
  const out = process.env.KMIP_EDGE_CODE_CACHE_OUT;
  if (out) process.on('exit', () => writeFileSync(out, script.createCachedData()));
  const bundleModule = new Module(bundle);
  bundleModule.filename = bundle;
  script.runInThisContext().call(bundleModule.exports, bundleModule.exports, createRequire(bundle), bundleModule, bundle, dirname(bundle));
}
