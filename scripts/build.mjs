// Bundles the CLI into dist/kmip-edge.mjs (esbuild; TOOLCHAIN.md: native modules stay external,
// and ESM output needs a require shim for CommonJS dependencies).
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const outfile = new URL('../dist/kmip-edge.mjs', import.meta.url).pathname;
await build({
  entryPoints: [new URL('../src/cli/main.ts', import.meta.url).pathname],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  external: ['classic-level', 'serialport'],
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
