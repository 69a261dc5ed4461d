// Bundles the CLI into dist/kmip-edge.cjs, minified, with dist/kmip-edge.cjs.map beside it
// (esbuild; TOOLCHAIN.md: native modules stay external), then makes V8's code cache for it,
// dist/kmip-edge.cjs.cache, and the command that runs it with the cache, dist/kmip-edge.mjs
// (scripts/launcher.mjs says why: ~40% of the time to ready). Issue #15 budget: the bundle is at
// most 1 MB (the map and the cache are not counted).
//
// CommonJS, for vm.Script's code cache: import.meta.url becomes the bundle's file URL, and the
// dynamic import()s of what stays outside (serialport, node:inspector) become require()s — both
// are CommonJS. classic-level's JavaScript is bundled too: loaded from node_modules it was 53 ms
// of a 458 ms start (CPU profile, slow host; most of it Node resolving its files), and the agent's
// idle RSS is 4 MB less without it (59.6 → 55.6 MB); only its binary and node-gyp-build, which
// finds the binary, stay in node_modules (the stub below).
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
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const analyze = process.argv.includes('--analyze');
const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const outfile = join(dist, 'kmip-edge.cjs');
const command = join(dist, 'kmip-edge.mjs');
// What builds before the launcher left: the ESM bundle's map and legal notes.
for (const stale of ['kmip-edge.mjs.map', 'kmip-edge.mjs.LEGAL.txt']) rmSync(join(dist, stale), { force: true });

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
/**
 * classic-level's binding.js is `require('node-gyp-build')(__dirname)`: in the bundle __dirname is
 * dist/, so the binary is looked up from the installed package's folder instead, and node-gyp-build
 * required from there, as classic-level would (the .node file stays outside the bundle).
 */
const CLASSIC_LEVEL_BINDING = `const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const main = createRequire(__filename).resolve('classic-level');
module.exports = createRequire(main)('node-gyp-build')(dirname(main));`;
/** [module path pattern (as esbuild resolves it), stub source (null: an mqtt transport that throws)]. */
const STUBS = [
  [/[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/](ws|wx|ali|socks)\.js$/, null],
  [/[\\/]worker-timers[\\/]/, 'export const setInterval = globalThis.setInterval; export const clearInterval = globalThis.clearInterval;'],
  [/[\\/]@opentelemetry[\\/]api[\\/]/, 'module.exports = {};'],
  [/[\\/]readable-stream[\\/]lib[\\/]ours[\\/]index\.js$/, 'module.exports = require("node:stream");'],
  [/[\\/]lru-cache[\\/]/, LRU_CACHE],
  [/[\\/]debug[\\/]src[\\/]index\.js$/, 'module.exports = function createDebug() { const debug = () => {}; debug.enabled = false; debug.extend = createDebug; return debug; };'],
  [/[\\/]classic-level[\\/]binding\.js$/, CLASSIC_LEVEL_BINDING],
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
  format: 'cjs',
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: analyze,
  external: ['serialport'],
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__kmipEdgeBundleUrl' },
  banner: { js: "const __kmipEdgeBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [stubPlugin],
  logLevel: 'warning',
});
copyFileSync(fileURLToPath(new URL('launcher.mjs', import.meta.url)), command);
chmodSync(command, 0o755);
chmodSync(outfile, 0o644);
try {
  await trainCodeCache();
} catch (error) {
  // The cache only makes starts faster: without it (the dev server's PKI needs the openssl command,
  // which `npm ci` on a bare machine may not have yet) the command runs the bundle compiled as
  // Node would. Said, not hidden: npm test builds again after installing its peers, and its
  // code-cache test fails on a missing cache; the Debian package refuses to be built without one.
  process.stderr.write(`build: no code cache made, so kmip-edge starts slower (nothing else changes): ${error.message}\n`);
}

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

/** Makes dist/kmip-edge.cjs.cache from a `run` to ready and its SIGTERM: a dev server upstream, the embedded broker. */
async function trainCodeCache() {
  const cache = `${outfile}.cache`;
  rmSync(cache, { force: true }); // the old one is of another bundle: V8 would reject it
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-build-'));
  // A service's environment, not this shell's: V8 flags in NODE_OPTIONS would make a cache that V8 rejects without them.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const started = [];
  const start = (args, extraEnv = {}) => {
    const child = spawn(process.execPath, [command, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...extraEnv } });
    started.push(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`training: kmip-edge ${args[0]} not ready within 60 s`)), 60_000);
      child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`training: kmip-edge ${args[0]} exited ${code}`))));
      createInterface({ input: child.stdout }).once('line', (line) => {
        clearTimeout(timer);
        try {
          resolve({ child, ready: JSON.parse(line) });
        } catch {
          reject(new Error(`training: kmip-edge ${args[0]} printed ${JSON.stringify(line.slice(0, 80))}, not its ready line`));
        }
      });
    });
  };
  const exited = (child) => child.exitCode !== null || child.signalCode !== null;
  const stopped = (child) => new Promise((resolve) => (exited(child) ? resolve() : (child.once('exit', resolve), child.kill('SIGTERM'))));
  try {
    const { ready: pki } = await start(['dev-server', '--port', '0', '--dir', join(dir, 'kms')]);
    execFileSync(process.execPath, [command, 'device', 'add', '--data', join(dir, 'agent'), '--id', 'training'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    const { child: agent } = await start(['run', '--data', join(dir, 'agent'), '--upstream', `127.0.0.1:${pki.port}`, '--upstream-ca', pki.ca, '--upstream-cert', pki.clientCert, '--upstream-key', pki.clientKey, '--embedded-broker', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--log-level', 'error'], { KMIP_EDGE_CODE_CACHE_OUT: cache });
    await stopped(agent);
    if (agent.exitCode !== 0) throw new Error(`training: kmip-edge run exited ${agent.exitCode}`);
    chmodSync(cache, 0o644); // written under the agent's owner-only umask; read by whoever runs the command
  } finally {
    for (const child of started) await stopped(child);
    rmSync(dir, { recursive: true, force: true });
  }
}
