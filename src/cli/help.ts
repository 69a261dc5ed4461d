/**
 * `kmip-edge <command> --help` (CLI.md wave 2): every subcommand's flags, in one place. main.ts
 * answers --help before a command runs, so asking for help never starts anything. `run`'s flags
 * come from the same table as its parser and configuration fields (../config/flags.ts).
 */
import { RUN_FLAGS, type RunFlag } from '../config/flags.ts';
import { DEVICE_SIM_USAGE } from './device-sim-command.ts';
import { KMIP_USAGE } from './kmip-command.ts';
import { TTLV_USAGE } from './ttlv-command.ts';

export const OVERVIEW = `kmip-edge — KMIP key agent for the edge

usage: kmip-edge <command> [flags]      kmip-edge <command> --help      kmip-edge --version

commands:
  run --config FILE | --data DIR …        the agent: upstream client, cache, ledger, devices
  config check FILE [run flags]           validate a configuration; print the effective one
  device add|list|remove|update --data …  provision devices (add prints the device key once)
  client add|list|remove|update --data …  register local KMIP clients (tape libraries) by certificate
  ledger --data DIR [--json]              usage allocations recorded by the agent
  cache --data DIR [--json]               the agent's cached keys, never their material
  status --data DIR [--json]              a running agent: upstream, keys, devices, pushes
  backup --data DIR --out FILE|DIR        a consistent snapshot of the store (running or stopped)
  restore --data DIR --from BACKUP        a backup into a stopped agent's folder
  master-key rotate --data DIR            re-seal every record under a new master key
  device-sim --id ID --key HEX … ACTION   a simulated device (MQTT or serial)
  kmip --server … OP …                    one KMIP operation against a server
  dev-server --port P --dir D             the development KMIP server (and its push command)
  ttlv decode|encode …                    TTLV ⇄ KMIP XML / JSON
  bench [ttlv|upstream|ledger|devices|outage|firmware|kmip-endpoint]  benchmarks, same-run baselines
  demo                                    the all-in-one demo on embedded defaults
`;

function runHelp(): string {
  const rows = (Object.entries(RUN_FLAGS) as [string, RunFlag][]).map(([name, flag]) => {
    const left = `  --${name} ${flag.value}${flag.multiple ? ' …' : ''}`;
    return `${left.padEnd(40)} ${flag.help}  [${flag.path}]`;
  });
  return `usage: kmip-edge run [--config FILE] [flags]

The agent. Settings come from the YAML file given with --config (see deploy/*.yaml) and from
flags, which override the file; the [field] after each flag is its place in the file. Relative
paths in the file are resolved against the file's folder. Secrets are only ever given as files.
Prints {"ready":true,…,"upstream":"online"|"offline",…} on stdout when serving; logs are JSON
lines on stderr. SIGHUP reloads the log level, the nonce-MAC mapping and the device registry;
SIGTERM drains and exits 0. Exit 2 with one line per problem for a bad configuration, a bad
certificate or key, a port in use or an unusable data folder.

  --config FILE                            the YAML configuration file
${rows.join('\n')}
  --help                                   this text
`;
}

const HELP: Record<string, () => string> = {
  run: runHelp,
  config: () => `usage: kmip-edge config check FILE [run flags]

Validates FILE (YAML) as kmip-edge run would read it, with any run flags over it, and prints the
effective configuration as one JSON object (defaults filled in, relative paths resolved; there
are no secrets in it: they are only ever paths of files). Exit 0 when valid; exit 2 and one line
per problem (field, value given, what is allowed) otherwise. Files named in it are not opened:
run checks certificates and keys when it starts.
`,
  device: () => `usage:
  kmip-edge device add --data DIR --id ID [--suite aes-256-gcm|chacha20-poly1305]
        [--key-uid U …] [--key-name N …] [--key-group G …] [--operation OP …] [--rate N] [--max-frame BYTES]
        prints {"id","suite","key"} once: the device key, for installing on the device
  kmip-edge device update --data DIR --id ID [--key-uid U …] [--key-name N …] [--key-group G …]
        [--operation OP …] [--rate N] [--max-frame BYTES]
        replaces the lists given (keys: any of --key-uid/--key-name/--key-group given replaces all
        key rules; --operation replaces the operations); the device key stays; effective at once
  kmip-edge device list --data DIR
  kmip-edge device remove --data DIR --id ID

  --data DIR          the agent's data folder; while the agent runs, through its admin socket
  --id ID             1-64 of [A-Za-z0-9._-]
  --suite S           aes-256-gcm (default) or chacha20-poly1305
  --key-uid U         allow the key with this Unique Identifier (repeatable)
  --key-name N        allow keys with this Name (repeatable)
  --key-group G       allow keys of this Object Group (repeatable)
  --operation OP      allow this operation (repeatable): Get, GetAttributes, GetUsageAllocation,
                      ObtainLease, Check, Query, DiscoverVersions, AddAttribute, ModifyAttribute
  --rate N            requests per second (default 50, bursts of twice that)
  --max-frame BYTES   largest frame accepted, 64-4096 (default 4096)
`,
  client: () => `usage:
  kmip-edge client add --data DIR --id ID --cert FILE [--key-id UID …] [--key-name N …] [--key-group G …]
        [--operation OP …] [--pool ALG-BITS[:GROUP]=N …]
        prints the client: {"id","spkiSha256","subject","keys","operations","pool"}
  kmip-edge client update --data DIR --id ID [--cert FILE] [--key-id UID …] [--key-name N …] [--key-group G …]
        [--operation OP …] [--pool ALG-BITS[:GROUP]=N …]
        replaces the lists given (any of --key-id/--key-name/--key-group replaces all key rules;
        --operation the operations; --pool the pool); --cert re-keys the client; effective at once
  kmip-edge client list --data DIR [--json]
  kmip-edge client remove --data DIR --id ID

Local KMIP clients (tape libraries, storage arrays) of the agent's KMIP endpoint (run --kmip-listen).
A client is its certificate's key: the SHA-256 of the certificate's SubjectPublicKeyInfo (the same
after a renewal with the same key). It connects over mutual TLS with that certificate, which must
chain to run --kmip-ca; a certificate of that CA that is not registered is refused (and logged with
its fingerprint). Keys outside its list are, to it, keys that do not exist (Item Not Found).
  --data DIR          the agent's data folder; while the agent runs, through its admin socket
  --id ID             1-64 of [A-Za-z0-9._-]
  --cert FILE         the client's certificate (PEM), valid for TLS client authentication
  --key-id UID        allow the key with this Unique Identifier (repeatable; --key-uid too)
  --key-name N        allow keys with this Name (repeatable)
  --key-group G       allow keys of this Object Group (repeatable)
  --operation OP      allow this operation (repeatable): DiscoverVersions, Query, Locate, Get,
                      GetAttributes, GetAttributeList, Check, GetUsageAllocation, ObtainLease, Create,
                      Register, Activate, AddAttribute, ModifyAttribute, DeleteAttribute, Revoke, Destroy
                      default (a tape library): DiscoverVersions, Query, Locate, Get, GetAttributes,
                      GetAttributeList, Check, ObtainLease, Create, Activate, AddAttribute, ModifyAttribute
  --pool ALG-BITS[:GROUP]=N   keep N keys of this algorithm and length (in Object Group GROUP)
                      created upstream ahead of need, for Create while the key server is
                      unreachable (repeatable), e.g. --pool AES-256:tape-lib-1=20
  --json              list: one JSON object {"clients":[…]}
`,
  'device-sim': () => `usage: ${DEVICE_SIM_USAGE}\n`,
  kmip: () => `${KMIP_USAGE}

  --server HOST:PORT  --ca F  --cert F  --key F     mutual TLS (PEM files)
  --server-name NAME  the name to verify in the server certificate
  --ciphers LIST      OpenSSL cipher list for TLS 1.2 servers
  --version 1.0..1.4  --https /PATH (the HTTPS profile)  --timeout SECONDS (default 10)
  --secret-file F     register: the secret as hex text in a file, - for standard input
                      (--secret-hex puts it on the command line, visible to other users in ps)
  other flags: --uid --algorithm --length --usage --name --usage-limits --usage-unit --secret-hex
               --wrap-uid --wrap-method --wrap-attribute --object-type --max --attribute --type
               --value --reason --count (see the operations above)
`,
  'dev-server': () => `usage:
  kmip-edge dev-server --port P --dir D [--host H] [--store memory|leveldb] [--push-to HOST:PORT …] [--lease-seconds S]
  kmip-edge dev-server push --dir D (--put UID [--replaces OLD_UID] | --notify UID | --list)

The development KMIP server: certificates are made in D on first start; prints one JSON ready line.
  --port P            default 5696; 0 = any free port
  --host H            default 127.0.0.1
  --dir D             its certificates (and LevelDB objects) live here
  --store S           memory (default) or leveldb
  --push-to HOST:PORT send Notify/Put to this Put/Notify listener (repeatable)
  --lease-seconds S   Obtain Lease answer (default 3600)
push: --put UID [--replaces OLD_UID], --notify UID, --list (pushes not yet acknowledged)
`,
  ttlv: () => `${TTLV_USAGE}\n`,
  ledger: () => `usage: kmip-edge ledger --data DIR [--json]

Usage allocations per key and device, from a stopped agent's store.
  --data DIR   the agent's data folder        --json   one JSON object
`,
  status: () => `usage: kmip-edge status --data DIR [--json]

A running agent's state, asked through its owner-only admin socket in DIR: the upstream (online or
offline, since when, the last failure), MQTT, each key with its state, lease expiry and remaining
allocation, each device with when it was last heard from and its pushes awaiting acknowledgement.
Never key material. Exit 1 when no agent is running on DIR.
  --data DIR     the agent's data folder
  --json         one JSON object instead of the table
`,
  cache: () => `usage: kmip-edge cache --data DIR [--json]

The agent's cached keys (names, state, lease), never their material, from a stopped agent's store.
  --data DIR   the agent's data folder        --json   one JSON object
`,
  backup: () => `usage: kmip-edge backup --data DIR --out FILE_OR_DIR [--include-master-key]

A consistent snapshot of the agent's store in one owner-only file with a checksum, written
atomically. While the agent runs it takes the snapshot itself (asked on its admin socket in DIR;
it writes FILE, so give a path its user can write); a stopped agent's store is read directly.
The master key is NOT in the backup unless --include-master-key: back up DIR/master.key apart
(the backup names it by fingerprint). Prints {"backup":FILE,"records":N,"sha256":…,"masterKey":…}.
  --data DIR              the agent's data folder
  --out FILE_OR_DIR       a new file, or a folder to make kmip-edge-backup-<time>.kebak in
  --include-master-key    put the master key in the backup (then guard it like DIR itself)
`,
  restore: () => `usage: kmip-edge restore --data DIR --from BACKUP [--master-key FILE] [--replace]

Restores a backup into a stopped agent's (or a new) data folder: checks the checksum, that the
master key is the backup's (fingerprint and authenticator), writes into a temporary store, reads
it back, syncs and renames it into place; an interrupted restore leaves DIR as it was.
  --data DIR          the data folder to restore into
  --from BACKUP       the backup file
  --master-key FILE   the master key kept apart (when the backup does not hold it and DIR has none)
  --replace           set aside a store that holds records (kept as store.replaced-<time>)
`,
  'master-key': () => `usage: kmip-edge master-key rotate --data DIR

Re-seals every sealed record (cached key material, device keys, pushes awaiting delivery) of a
stopped agent's store under a new master key, then replaces DIR/master.key. Crash-safe: if it is
interrupted, the agent refuses to start until it is run again, and it resumes.
  --data DIR   the agent's data folder (the agent must be stopped)
`,
  bench: () => `usage: kmip-edge bench [ttlv|upstream|ledger|devices …] [--json] [flags]

Benchmarks, each next to a baseline measured in the same run.
  --json              one JSON line per measurement
  --seconds S         per measurement, (0, 600] (default 1)
  --input FILE.hex    ttlv: a message as hex text (repeatable)
  --keys N            upstream: keys to fetch (default 1000)
  --devices 1,100,…   devices: device counts
  --rounds N          devices: alternated rounds, best of each (1-20)
  --placement P       devices: split (default) or shared
  outage (not run by default): N devices doing cached Gets and allocations while the upstream
  is cut and comes back — a real agent, dev server and Mosquitto; baseline: the upstream up
  --devices N         outage: one count (default 1000)
  --seconds S         outage: each phase with the upstream up, before and after (default 30)
  --outage-seconds S  outage: how long the upstream is cut (default 60)
  --cut MODE          outage: refuse (connections refused) or blackhole (accepted, never answered)
  --rate R            outage: requests per second per device (default 1)
  --resend-ms M       outage: a device's resend interval while unanswered (default 5000)
  kmip-endpoint (not run by default): Gets of a cached key through the local KMIP endpoint by
  concurrent TLS clients, next to the same Gets to the dev server and a bare TLS echo (target:
  p50 <= 1.25x the echo)
  --clients 1,16      kmip-endpoint: numbers of concurrent TLS clients (default 1,16)
  --rounds N          kmip-endpoint: alternated rounds sharing out --seconds per side (default 10;
                      --seconds defaults to 3 here)
`,
  demo: () => `usage: kmip-edge demo [--seconds S] [--events FILE] [--keep DIR] [--pace MS] [--plain]

Runs the whole gateway on one machine: the development KMIP server, the agent with the embedded
MQTT broker, a simulated tape drive and a sensor. Stages: keys fetched (one with end-to-end
nonce-MAC); the tape drive encrypts in chunks drawing usage allocations; the key server sends a
Put Replace and a Notify; the key server is cut (offline serving, allocations draining) and comes
back (refills resume). On a terminal: a live view redrawn in place, until Ctrl-C. Otherwise: one
line per event, ending after the last stage.
  --seconds S    stop after S seconds (exit 1 if the stages had not finished); off a terminal
                 without --keep the bound is 120 s
  --events FILE  every event as a JSON line {"t","stage","event","text",…}; the last is "done"
  --keep DIR     set up in DIR (new or empty) and stay up after the stages, printing the
                 commands to talk to it (kmip-edge status --data DIR/agent, device-sim …)
  --pace MS      time between steps (default 700 on a terminal, 60 otherwise)
  --plain        plain lines even on a terminal
`,
};

/** The help of `command`, or the overview for an unknown or missing one. */
export function helpText(command: string | undefined): string {
  const help = command === undefined ? undefined : HELP[command];
  return help ? help() : OVERVIEW;
}

export const COMMANDS_WITH_HELP: readonly string[] = Object.keys(HELP);
