// `npm run package:deb`: the Debian package of kmip-edge, built with dpkg-deb from the bundle
// (dist/, `node scripts/build.mjs` first) and the two native modules it keeps external
// (classic-level, serialport, with their runtime dependencies and the prebuilt binary for the
// target architecture only). Nothing is fetched: at install time the package needs only Debian's
// own packages (nodejs >= 20.19, adduser). Layout (issue #15; like Debian's mosquitto):
//   /usr/lib/kmip-edge/{package.json,dist/,node_modules/}   the program
//   /usr/bin/kmip-edge                                      runs it with /usr/bin/node
//   /etc/kmip-edge/config.yaml                              conffile, from deploy/gateway-embedded-broker.yaml
//   /lib/systemd/system/kmip-edge.service                   deploy/kmip-edge.service
//   /usr/share/doc/kmip-edge/                               operator guide, configuration reference, examples
//   DEBIAN/{postinst,prerm,postrm}                          deploy/debian/: user, state folder, master key, unit
// Usage: node scripts/package-deb.mjs [--arch amd64|arm64|armhf] [--out DIR]; prints {"deb": PATH, "bytes": N}.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { arch: { type: 'string' }, out: { type: 'string' } }, strict: true });
const arch = values.arch ?? execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
/** Debian architecture → the prebuilds/ folder name of node-gyp-build. */
const PREBUILD = { amd64: 'linux-x64', arm64: 'linux-arm64', armhf: 'linux-arm' }[arch];
if (PREBUILD === undefined) fail(`--arch ${arch}: expected amd64, arm64 or armhf (the architectures with prebuilt native modules)`);
const out = values.out ?? join(ROOT, 'dist');

function fail(message) {
  process.stderr.write(`package-deb: ${message}\n`);
  process.exit(2);
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const bundle = join(ROOT, 'dist', 'kmip-edge.mjs');
if (!existsSync(bundle)) fail('dist/kmip-edge.mjs is missing: run node scripts/build.mjs first (npm run package:deb does)');
// Without it every start of the packaged agent compiles the bundle anew (scripts/launcher.mjs).
if (!existsSync(join(ROOT, 'dist', 'kmip-edge.cjs.cache'))) fail('dist/kmip-edge.cjs.cache is missing: the build could not make the code cache (its message says why; the dev server it trains with needs the openssl command)');

const stage = mkdtempSync(join(tmpdir(), 'kmip-edge-deb-'));
chmodSync(stage, 0o755); // the package's ./, owned by root 0755 like every Debian package
try {
  const lib = join(stage, 'usr/lib/kmip-edge');
  mkdirSync(join(lib, 'dist'), { recursive: true });
  // packageRoot() (src/cli/package-root.ts) finds this manifest: name and version only.
  writeFileSync(join(lib, 'package.json'), JSON.stringify({ name: manifest.name, version: manifest.version, type: 'module', private: true, license: manifest.license }, null, 2) + '\n');
  for (const file of readdirSync(join(ROOT, 'dist')).filter((name) => name.startsWith('kmip-edge.'))) copyFileSync(join(ROOT, 'dist', file), join(lib, 'dist', file));

  // The native modules and what they require at run time, as npm laid them out.
  for (const dir of runtimeClosure(['classic-level', 'serialport'])) {
    const target = join(lib, dir.slice(ROOT.length));
    cpSync(dir, target, { recursive: true, dereference: true, filter: (source) => !source.slice(dir.length).startsWith('/node_modules') });
    const prebuilds = join(target, 'prebuilds');
    if (existsSync(prebuilds)) {
      if (!existsSync(join(prebuilds, PREBUILD))) fail(`${dir.slice(ROOT.length)} has no prebuilt binary for ${PREBUILD}`);
      for (const platform of readdirSync(prebuilds)) if (platform !== PREBUILD) rmSync(join(prebuilds, platform), { recursive: true });
      // The C/C++ sources are for building from source, which the prebuilt binary makes unneeded.
      for (const source of ['deps', 'src', 'binding.cc', 'binding.gyp']) rmSync(join(target, source), { recursive: true, force: true });
    }
  }

  writeExecutable(join(stage, 'usr/bin/kmip-edge'), '#!/bin/sh\nexec /usr/bin/node /usr/lib/kmip-edge/dist/kmip-edge.mjs "$@"\n');

  const example = readFileSync(join(ROOT, 'deploy/gateway-embedded-broker.yaml'), 'utf8');
  writeFile(join(stage, 'etc/kmip-edge/config.yaml'), '# /etc/kmip-edge/config.yaml, read by kmip-edge.service (`systemctl reload kmip-edge` after an edit).\n' +
    '# Put the certificates and the agent key named below in /etc/kmip-edge (group kmip-edge, mode 0640).\n' + example);
  writeFile(join(stage, 'lib/systemd/system/kmip-edge.service'), readFileSync(join(ROOT, 'deploy/kmip-edge.service'), 'utf8'));

  const doc = join(stage, 'usr/share/doc/kmip-edge');
  for (const file of ['README.md', 'configuration.md', 'mosquitto.conf', 'mosquitto.acl']) writeFile(join(doc, file), readFileSync(join(ROOT, 'deploy', file), 'utf8'));
  for (const file of readdirSync(join(ROOT, 'deploy')).filter((name) => name.endsWith('.yaml'))) writeFile(join(doc, 'examples', file), readFileSync(join(ROOT, 'deploy', file), 'utf8'));
  writeFile(join(doc, 'copyright'), `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: kmip-edge\n\nFiles: *\nLicense: ${manifest.license}\n On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n\nFiles: usr/lib/kmip-edge/node_modules/*\nLicense: see each module's package.json and LICENSE file\n`);

  const control = join(stage, 'DEBIAN');
  mkdirSync(control, { mode: 0o755 });
  const installedKiB = Number(execFileSync('du', ['-sk', '--exclude=DEBIAN', stage], { encoding: 'utf8' }).split('\t')[0]);
  const version = `${manifest.version}-1`;
  writeFile(join(control, 'control'), [
    'Package: kmip-edge',
    `Version: ${version}`,
    `Architecture: ${arch}`,
    'Maintainer: kmip-edge maintainers <kmip-edge@localhost>',
    `Installed-Size: ${installedKiB}`,
    // Node 20.19+ (engines); Debian 13 ships 20.19, Debian 12 needs it from NodeSource or backports.
    'Depends: nodejs (>= 20.19), adduser',
    'Suggests: mosquitto',
    'Section: net',
    'Priority: optional',
    `Description: ${manifest.description.split(':')[0]}`,
    ' kmip-edge caches keys from an enterprise KMIP server (KMIP 1.0-1.4 over mutual',
    ' TLS) on an edge gateway and serves them to constrained devices over MQTT or',
    ' serial lines, with usage allocations and offline operation. The package runs',
    ' it as the kmip-edge system user under a hardened systemd unit.',
    '',
  ].join('\n'));
  writeFile(join(control, 'conffiles'), '/etc/kmip-edge/config.yaml\n');
  for (const script of ['postinst', 'prerm', 'postrm']) writeExecutable(join(control, script), readFileSync(join(ROOT, 'deploy/debian', script), 'utf8'));

  mkdirSync(out, { recursive: true });
  const deb = join(out, `kmip-edge_${version}_${arch}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.stdout.write(JSON.stringify({ deb, bytes: statSync(deb).size }) + '\n');
} finally {
  rmSync(stage, { recursive: true, force: true });
}

/** The package folders of `names` and their dependencies (including optional ones present), found as Node would. */
function runtimeClosure(names) {
  const found = new Set();
  const visit = (name, from) => {
    for (let dir = from; ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) {
        if (found.has(candidate)) return;
        found.add(candidate);
        const pkg = JSON.parse(readFileSync(join(candidate, 'package.json'), 'utf8'));
        for (const dependency of Object.keys(pkg.dependencies ?? {})) visit(dependency, candidate);
        for (const dependency of Object.keys(pkg.optionalDependencies ?? {})) if (existsSync(join(candidate, 'node_modules', dependency)) || existsSync(join(ROOT, 'node_modules', dependency))) visit(dependency, candidate);
        return;
      }
      if (dir.length <= ROOT.length - 1) fail(`${name} (needed by ${from.slice(ROOT.length) || 'kmip-edge'}) is not installed: run npm ci`);
    }
  };
  for (const name of names) visit(name, ROOT.replace(/\/$/, ''));
  return [...found].sort();
}

function writeFile(path, text) {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileSync(path, text, { mode: 0o644 });
  chmodSync(path, 0o644);
}

function writeExecutable(path, text) {
  writeFile(path, text);
  chmodSync(path, 0o755);
}
