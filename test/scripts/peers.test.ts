// The test command's preflight (scripts/peers.mjs): on a machine without the peers, a user who is
// not root gets one line naming the packages and the command to run, at once — never a hang.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PEERS = fileURLToPath(new URL('../../scripts/peers.mjs', import.meta.url));
/** As root, the check runs as nobody (as root it would install instead). */
const NOT_ROOT = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

test('a missing peer, not root: one line naming it and install-peers.sh, exit 1', () => {
  const run = spawnSync(process.execPath, [PEERS, '--ensure', 'kmip-edge-no-such-package'], { encoding: 'utf8', ...NOT_ROOT, timeout: 20_000 });
  assert.equal(run.status, 1, run.stderr);
  assert.equal(run.stderr, 'peers: the test suite needs Debian packages that are not installed: kmip-edge-no-such-package — run: sudo scripts/install-peers.sh\n');
});

test('every peer the suite needs is installed here (the runner checked it before starting)', () => {
  const run = spawnSync(process.execPath, [PEERS, '--missing'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(run.status, 0);
  assert.equal(run.stdout, '');
});
