// The Debian packages the test suite needs (scripts/install-peers.sh installs them) and the check
// the test runner makes before it starts: a missing peer is a failure named up front, never a
// skip and never a hang (ARCHITECTURE.md §7).
//   node scripts/peers.mjs --packages   one package a line (install-peers.sh reads this)
//   node scripts/peers.mjs --missing    the packages not installed, one a line
//   node scripts/peers.mjs --ensure [PKG ...]   install the missing ones when root, else exit 1 naming them
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const PEER_PACKAGES = [
  // real peers of the integration tests
  'python3-pykmip', 'mosquitto', 'socat', 'prometheus', 'tmux', 'openssl', 'bsdutils',
  // the Debian package test: dpkg -i (adduser, deb-systemd-helper), systemd-analyze verify|security
  'adduser', 'init-system-helpers', 'systemd',
  // firmware-bridge: native build, sanitizers, libFuzzer, unit tests, PSA Crypto, MQTT example
  'cmake', 'clang', 'libclang-rt-14-dev', 'libcmocka-dev', 'libmbedtls-dev', 'libmosquitto-dev',
  // firmware-bridge on 32-bit ARM Linux under qemu-arm, and bare-metal Cortex-M size figures
  // (libc6-dev-armhf-cross is only a Recommends of the cross compiler, which cannot link without it)
  'gcc-arm-linux-gnueabihf', 'libc6-dev-armhf-cross', 'libmbedtls-dev:armhf', 'libcmocka-dev:armhf', 'libmosquitto-dev:armhf', 'qemu-user',
  'gcc-arm-none-eabi', 'libnewlib-arm-none-eabi',
];

/** The packages dpkg does not list as installed (all of them where there is no dpkg). */
export function missingPeerPackages(packages = PEER_PACKAGES) {
  const query = spawnSync('dpkg-query', ['-W', '-f=${binary:Package} ${db:Status-Abbrev}\\n', ...packages], { encoding: 'utf8' });
  if (query.error) return [...packages];
  const installed = new Set(
    query.stdout.split('\n').map((line) => line.split(' ')).filter(([, status]) => status?.startsWith('ii')).map(([name]) => name),
  );
  const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
  return packages.filter((name) => !installed.has(name) && !installed.has(`${name}:${arch}`));
}

/**
 * Missing packages are installed when we are root (scripts/install-peers.sh, as CI does); otherwise
 * the process exits 1 at once with one line naming them and the command to run.
 */
export function ensurePeers(packages = PEER_PACKAGES) {
  let missing = missingPeerPackages(packages);
  if (missing.length > 0 && process.getuid?.() === 0) {
    console.error(`peers: installing the test peers (${missing.join(' ')}) with scripts/install-peers.sh`);
    const install = spawnSync('bash', [fileURLToPath(new URL('install-peers.sh', import.meta.url))], { stdio: 'inherit' });
    if (install.status !== 0) {
      console.error('peers: scripts/install-peers.sh failed (see above); the test suite needs those packages');
      process.exit(1);
    }
    missing = missingPeerPackages(packages);
  }
  if (missing.length > 0) {
    console.error(`peers: the test suite needs Debian packages that are not installed: ${missing.join(' ')} — run: sudo scripts/install-peers.sh`);
    process.exit(1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--ensure') ensurePeers(process.argv.length > 3 ? process.argv.slice(3) : PEER_PACKAGES);
  else {
    const list = process.argv[2] === '--missing' ? missingPeerPackages() : PEER_PACKAGES;
    if (list.length > 0) process.stdout.write(list.join('\n') + '\n');
  }
}
