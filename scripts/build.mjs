// Bundles the CLI into dist/kmip-edge.mjs, minified, with dist/kmip-edge.mjs.map beside it
// (esbuild; TOOLCHAIN.md: native modules stay external, and ESM output needs a require shim for
// CommonJS dependencies). Issue #15 budget: the bundle is at most 1 MB (the map is not counted).
//
// To fit, modules the agent can never reach are replaced by small stubs (measured with esbuild's
// metafile, `node scripts/build.mjs --analyze` prints the largest inputs):
// - mqtt's WebSocket, WeChat and Alipay transports and its SOCKS proxy (~120 kB with `ws` and
//   `socks`): the configuration accepts only mqtt:// and mqtts:// URLs and no proxy
//   (src/config/schema.ts); a stub that is reached anyway throws, naming itself;
// - mqtt's worker-timers (browser only) and @opentelemetry/api, which prom-client calls only for
//   exemplars, which the agent does not enable (loaded eagerly, so an empty object);
// - lru-cache, for a Map (below);
// - readable-stream (~80 kB), the user-land copy of Node's streams that mqtt and bl use: Node 20's
//   own node:stream is the same API (readable-stream 4 tracks Node 18+);
// - thread-stream (~10 kB), pino's worker-thread transports: they break inside a bundle
//   (TOOLCHAIN.md), so the agent logs to a stream in-process (src/log.ts); required eagerly by
//   pino, so a class that throws if it is ever constructed;
// - debug (~8 kB with ms), the DEBUG=name diagnostics of mqtt and mqtt-packet: every debug
//   function becomes a no-op (the agent's own logs say what happens). The real one also creates
//   process.stderr for its colour check when the first namespace is made, at start (issue #15
//   footprint).
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const analyze = process.argv.includes('--analyze');
const outfile = fileURLToPath(new URL('../dist/kmip-edge.mjs', import.meta.url));

const unreachable = (what) => `throw new Error(${JSON.stringify(`kmip-edge: ${what} is not part of this build`)});`;
/**
 * lru-cache (~17 kB) serves only mqtt's MQTT 5 topic aliases (topic-alias-send.js: get, set, size,
 * clear, keys — most recently used first, as lru-cache yields them); this Map does the same.
 */
const LRU_CACHE = `export class LRUCache {
  constructor({ max }) { this.max = max; this.map = new Map(); }
  get size() { return this.map.size; }
  get(key) { if (!this.map.has(key)) return undefined; const value = this.map.get(key); this.map.delete(key); this.map.set(key, value); return value; }
  set(key, value) { this.map.delete(key); this.map.set(key, value); if (this.map.size > this.max) this.map.delete(this.map.keys().next().value); return this; }
  clear() { this.map.clear(); }
  *keys() { yield* [...this.map.keys()].reverse(); }
}`;
/** [module path pattern (as esbuild resolves it), stub source (null: an mqtt transport that throws)]. */
const STUBS = [
  [/[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/](ws|wx|ali|socks)\.js$/, null],
  [/[\\/]worker-timers[\\/]/, 'export const setInterval = globalThis.setInterval; export const clearInterval = globalThis.clearInterval;'],
  [/[\\/]@opentelemetry[\\/]api[\\/]/, 'module.exports = {};'],
  [/[\\/]readable-stream[\\/]lib[\\/]ours[\\/]index\.js$/, 'module.exports = require("node:stream");'],
  [/[\\/]lru-cache[\\/]/, LRU_CACHE],
  [/[\\/]debug[\\/]src[\\/]index\.js$/, 'module.exports = function createDebug() { const debug = () => {}; debug.enabled = false; debug.extend = createDebug; return debug; };'],
  [/[\\/]thread-stream[\\/]index\.js$/, `module.exports = class ThreadStream { constructor() { ${unreachable('pino worker-thread transports')} } };`],
];

/** Resolves normally, then swaps a matching module for its stub (kept in the module's folder so its relative imports still resolve). */
const stubPlugin = {
  name: 'kmip-edge-stubs',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === 'stub-resolve' || args.kind === 'entry-point') return undefined;
      const result = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'stub-resolve' });
      if (result.errors.length > 0 || result.external) return undefined;
      const stub = STUBS.find(([pattern]) => pattern.test(result.path));
      if (stub === undefined) return undefined;
      return { path: result.path, namespace: 'stub', pluginData: stub[1] ?? unreachable(`mqtt transport ${result.path.split(/[\\/]/).pop()}`) };
    });
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({
      contents: args.pluginData,
      resolveDir: args.path.replace(/[\\/][^\\/]*$/, ''),
      loader: 'js',
    }));
  },
};

const result = await build({
  entryPoints: [fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))],
  outfile,
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: analyze,
  external: ['classic-level', 'serialport'],
  plugins: [stubPlugin],
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);

if (analyze) {
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined);
  const byPackage = new Map();
  for (const [file, { bytesInOutput }] of Object.entries(output.inputs)) {
    const pkg = file.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? file.split('/').slice(0, 2).join('/');
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + bytesInOutput);
  }
  process.stdout.write(`${output.bytes} bytes\n`);
  for (const [pkg, bytes] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`${String(bytes).padStart(8)}  ${pkg}\n`);
}
