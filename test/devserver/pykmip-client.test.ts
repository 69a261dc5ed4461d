/**
 * A client of another implementation talks to the development server: PyKMIP's ProxyKmipClient
 * (/usr/bin/python3, Debian python3-pykmip) creates, gets, locates, activates, revokes and
 * destroys a key over mutual TLS.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { startDevServer } from '../helpers/dev-server.ts';

const SCRIPT = `
import sys, json
from kmip.pie.client import ProxyKmipClient
from kmip import enums
from kmip.core.factories import attributes as attribute_factory
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
out = {}
with ProxyKmipClient(hostname='127.0.0.1', port=port, cert=cert, key=key, ca=ca, config_file='/dev/null', kmip_version=enums.KMIPVersion.KMIP_1_2) as c:
    uid = c.create(enums.CryptographicAlgorithm.AES, 256, name='pykmip-made', cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT])
    out['uid'] = uid
    key_object = c.get(uid)
    out['length'] = key_object.cryptographic_length
    out['bytes'] = len(key_object.value)
    names = attribute_factory.AttributeFactory().create_attribute(enums.AttributeType.NAME, 'pykmip-made')
    out['located'] = c.locate(attributes=[names])
    c.activate(uid)
    out['state'] = str(c.get_attributes(uid, ['State'])[1][0].attribute_value.value)
    c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    c.destroy(uid)
    try:
        c.get(uid)
        out['after_destroy'] = 'still there'
    except Exception as e:
        out['after_destroy'] = type(e).__name__ + ': ' + str(e)
print(json.dumps(out))
`;

let dev: Awaited<ReturnType<typeof startDevServer>>;
before(async () => {
  dev = await startDevServer();
});
after(() => dev?.stop());

it("PyKMIP's client creates, gets, locates, activates, revokes and destroys a key on the development server", async () => {
  assert.ok(existsSync('/usr/bin/python3'), 'needs /usr/bin/python3 with python3-pykmip (sudo scripts/install-peers.sh)');
  // Asynchronously: the server runs in this process and must keep answering meanwhile.
  const run = await promisify(execFile)('/usr/bin/python3', ['-c', SCRIPT, String(dev.endpoint.port), join(dev.dir, 'ca.pem'), join(dev.dir, 'client.pem'), join(dev.dir, 'client.key')], { encoding: 'utf8', timeout: 60_000 });
  const out = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.equal(out.length, 256);
  assert.equal(out.bytes, 32);
  assert.deepEqual(out.located, [out.uid]);
  assert.equal(out.state, 'State.ACTIVE');
  assert.match(String(out.after_destroy), /ITEM_NOT_FOUND/);
});
