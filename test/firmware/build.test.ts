/**
 * firmware-bridge builds and its own tests pass, as CI runs them (clean builds, each bounded):
 * - natively with clang, AddressSanitizer + UndefinedBehaviorSanitizer (FB_SANITIZE=ON), every
 *   target warning-free under -Werror (library, tests, fbtool, examples), then ctest;
 * - the libFuzzer targets (FB_FUZZ=ON), each run for a few seconds from the committed seeds —
 *   a crash, leak or sanitizer report fails the test;
 * - cross-compiled for 32-bit ARM Linux with gcc (cmake/arm-linux-gnueabihf.cmake), ctest running
 *   every test binary under qemu-arm (CMAKE_CROSSCOMPILING_EMULATOR);
 * - scripts/size-table.sh: the core within the budget of issue #14 on Cortex-M (flash, stack,
 *   static RAM, heap), the committed tables current, and the script's own check able to fail.
 * The build times are printed (CI sizing), never asserted.
 */
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ARMHF_TOOLCHAIN, buildFirmware, elfMachine, FIRMWARE, mustRun, run } from './firmware-build.ts';

/** Seconds each fuzzer runs (three targets: well inside the file's time bound). */
const FUZZ_SECONDS = 6;

/**
 * Runs ctest (all tests but `exclude`, a regular expression); its summary must count every test
 * CMake registered but those.
 */
async function ctest(dir: string, exclude?: string): Promise<string[]> {
  const filter = exclude === undefined ? [] : ['-E', exclude];
  const listed = await mustRun('ctest', ['--test-dir', dir, '-N', ...filter], { timeoutMs: 30_000 });
  const names = [...listed.stdout.matchAll(/Test +#\d+: (\S+)/g)].map((m) => m[1]!);
  assert.ok(names.length >= 6, `ctest lists the library's tests: ${listed.stdout}`);
  const result = await run('ctest', ['--test-dir', dir, '--output-on-failure', '--timeout', '120', ...filter], { timeoutMs: 180_000 });
  assert.equal(result.status, 0, `ctest in ${dir}:\n${result.stdout.slice(-6000)}\n${result.stderr.slice(-2000)}`);
  assert.match(result.stdout, new RegExp(`100% tests passed, 0 tests failed out of ${names.length}`));
  return names;
}

it('native, clang, ASan + UBSan: everything builds warning-free and ctest passes', async () => {
  const build = await buildFirmware('sanitize', { compiler: 'clang', defines: { FB_SANITIZE: 'ON' } });
  process.stderr.write(`firmware-bridge sanitized build: configure ${Math.round(build.configureMs)} ms, build ${Math.round(build.buildMs)} ms\n`);
  const names = await ctest(build.dir);
  assert.ok(names.includes('test_vectors') && names.includes('vectors_header_current'), names.join(' '));
});

it('libFuzzer: frame open, SLIP decode and the TTLV reader each run from the seeds without a finding', async () => {
  const build = await buildFirmware('fuzz', { compiler: 'clang', defines: { FB_FUZZ: 'ON', FB_BUILD_TESTS: 'OFF', FB_BUILD_TOOLS: 'OFF' }, targets: ['fuzz_frame_open', 'fuzz_slip', 'fuzz_ttlv'] });
  process.stderr.write(`firmware-bridge fuzz build: configure ${Math.round(build.configureMs)} ms, build ${Math.round(build.buildMs)} ms\n`);
  for (const [target, seeds] of [['fuzz_frame_open', 'frame'], ['fuzz_slip', 'slip'], ['fuzz_ttlv', 'ttlv']] as const) {
    const seedDir = join(FIRMWARE, 'fuzz/corpus', seeds);
    assert.ok(readdirSync(seedDir).length > 0, `${seedDir} holds seeds`);
    // libFuzzer adds what it finds to its first corpus folder: a scratch copy, never the repository's.
    const corpus = mkdtempSync(join(tmpdir(), `kmip-edge-fb-corpus-${seeds}-`));
    cpSync(seedDir, corpus, { recursive: true });
    const artifacts = mkdtempSync(join(tmpdir(), `kmip-edge-fb-crash-${seeds}-`));
    const result = await run(join(build.dir, 'fuzz', target), [`-max_total_time=${FUZZ_SECONDS}`, '-timeout=10', '-rss_limit_mb=1024', '-print_final_stats=1', `-artifact_prefix=${artifacts}/`, corpus], { timeoutMs: (FUZZ_SECONDS + 60) * 1000 });
    const executions = /stat::number_of_executed_units:\s*(\d+)/.exec(result.stderr)?.[1];
    process.stderr.write(`${target}: ${executions ?? '?'} executions in ${FUZZ_SECONDS} s\n`);
    assert.equal(result.status, 0, `${target} found something (artifacts in ${artifacts}):\n${result.stderr.slice(-6000)}`);
    assert.ok(Number(executions) > 0, `${target} ran: ${result.stderr.slice(-2000)}`);
  }
});

it('armhf (arm-linux-gnueabihf-gcc): everything builds warning-free and ctest passes under qemu-arm, in fb_config.h\'s default configuration (no status names)', async () => {
  // FB_STATUS_NAMES=OFF: the library as a firmware build compiles it by default (fb_config.h,
  // the size table's figures); the native builds above keep the CMake default (names on).
  const build = await buildFirmware('armhf', { toolchain: ARMHF_TOOLCHAIN, defines: { FB_STATUS_NAMES: 'OFF' } });
  process.stderr.write(`firmware-bridge armhf build: configure ${Math.round(build.configureMs)} ms, build ${Math.round(build.buildMs)} ms\n`);
  const commands = await mustRun('ctest', ['--test-dir', build.dir, '-N', '-V', '-R', '^test_'], { timeoutMs: 30_000 });
  assert.match(commands.stdout, /Test command: \S*qemu-arm "-L" "\/usr\/arm-linux-gnueabihf" /, 'the test binaries run under qemu-arm');
  assert.equal(elfMachine(join(build.dir, 'tests', 'test_vectors')), '32-bit ARM');
  // fbtool_cross_check_typescript execs the fbtool it is given directly (node → an ARM binary,
  // "Syntax error" without binfmt_misc): it runs in the native build above; here everything else.
  const ran = await ctest(build.dir, '^fbtool_cross_check_typescript$');
  assert.ok(ran.includes('test_vectors') && ran.includes('test_device'), ran.join(' '));
});

/** The budget of issue #14: core flash on Cortex-M4 at -Os, stack per public function. */
const FLASH_BUDGET = 8192;
const STACK_BUDGET = 1024;

it('scripts/size-table.sh: every core file sized for Cortex-M0+ and M4 within the budget (≤ 8 KB flash, no static RAM, ≤ 1 KB stack), the committed tables current', async () => {
  const result = await mustRun('bash', [join(FIRMWARE, 'scripts/size-table.sh')], { timeoutMs: 120_000 });
  const table = result.stdout;
  const sources = [...readFileSync(join(FIRMWARE, 'CMakeLists.txt'), 'utf8').matchAll(/\$\{CMAKE_CURRENT_SOURCE_DIR\}\/src\/(fb_[a-z_]+\.c)/g)].map((m) => m[1]!).filter((f) => f !== 'fb_crypto_psa.c');
  assert.ok(sources.length >= 6, sources.join(' '));
  let sum = 0;
  for (const source of sources) {
    const row = new RegExp(`^\\| ${source} \\| [\\d.]+ K \\(\\d+\\) \\| [\\d.]+ K \\((\\d+)\\) \\| \\d+ \\|$`, 'm').exec(table);
    assert.ok(row, `${source} has a row`);
    sum += Number(row[1]);
  }
  const total = /^\| \*\*Total\*\* \| .* \| ([\d.]+) K \((\d+)\) \| (\d+) \|$/m.exec(table);
  assert.ok(total, table);
  assert.equal(Number(total[2]), sum, 'the total is the sum of the files');
  assert.ok(sum <= FLASH_BUDGET, `core on Cortex-M4 -Os: ${sum} bytes of flash, budget ${FLASH_BUDGET}`);
  assert.equal(total[3], '0', 'no static RAM in the core (no global mutable state)');
  for (const name of ['fb_device_init', 'fb_device_receive', 'fb_device_request', 'fb_frame_seal', 'fb_slip_decode', 'fb_kmip_parse_response']) {
    assert.match(table, new RegExp(`^\\| \`${name}\` \\| \\d+( \\+ indirect)? \\| \\d+( \\+ indirect)? \\|$`, 'm'), `${name}: a static stack figure`);
  }
  assert.doesNotMatch(table, /RECURSION|DYNAMIC/, 'no recursion and no dynamically sized frame: the worst case is bounded');
  const stacks = [...table.matchAll(/^\| `(fb_[a-z0-9_]+)` \| (\d+)[^|]*\| (\d+)[^|]*\|$/gm)];
  assert.ok(stacks.length >= 40, `a stack row per public function: ${stacks.length}`);
  for (const [, name, m0, m4] of stacks) assert.ok(Number(m0) <= STACK_BUDGET && Number(m4) <= STACK_BUDGET, `${name}: ${m0} / ${m4} bytes of stack, budget ${STACK_BUDGET}`);
  const deepest = Math.max(...stacks.map((s) => Number(s[3])));
  // The committed figures are this run's: docs/size-table.md whole, and the README's table.
  assert.equal(readFileSync(join(FIRMWARE, 'docs/size-table.md'), 'utf8'), table, 'docs/size-table.md is stale: run firmware-bridge/scripts/size-table.sh --write');
  const readme = /<!-- size-table\.sh: begin -->\n([\s\S]*?)<!-- size-table\.sh: end -->/.exec(readFileSync(join(FIRMWARE, 'README.md'), 'utf8'));
  assert.ok(readme, 'README.md has the size-table.sh markers');
  assert.ok(table.includes(readme[1]!) && readme[1]!.includes('**Total**'), `README's size table is stale: run firmware-bridge/scripts/size-table.sh --write\n${readme[1]}`);
  process.stderr.write(`core on Cortex-M4 -Os: ${total[2]} bytes of flash (budget ${FLASH_BUDGET}), ${total[3]} bytes of RAM, deepest stack ${deepest} bytes\n`);
});

/**
 * The script's budget check can fail: on a scratch copy of firmware-bridge, each excess added to
 * the core alone makes it exit 1 naming that excess (the figures of the real core are not needed
 * for that, so this holds whatever the core's margin is).
 */
it('scripts/size-table.sh exits 1 when the core exceeds its budget: flash, stack, unbounded stack, static RAM, heap', async () => {
  const excesses: { what: string; code: string; header?: string; message: RegExp }[] = [
    { what: 'flash', code: 'const unsigned char fb_bloat[8192] = {1};\nunsigned char fb_bloat_at(unsigned i) { return fb_bloat[i & 8191u]; }\n', message: /over budget \(issue #14\): flash of the core on cortex-m4 is \d+ bytes, budget 8192/ },
    { what: 'stack', code: 'void fb_deep(void) { volatile unsigned char frame[1100]; frame[0] = 1u; frame[1099] = frame[0]; }\n', header: 'void fb_deep(void);\n', message: /over budget \(issue #14\): stack of fb_deep on cortex-m4 is \d+ bytes, budget 1024/ },
    { what: 'recursion', code: 'unsigned fb_depth(unsigned n) { return n < 2u ? n : fb_depth(n - 1u) + fb_depth(n - 2u); }\n', header: 'unsigned fb_depth(unsigned n);\n', message: /over budget \(issue #14\): stack of fb_depth on cortex-m4 is unbounded/ },
    { what: 'static RAM', code: 'static unsigned fb_calls;\nunsigned fb_count_call(void) { return ++fb_calls; }\n', message: /over budget \(issue #14\): static RAM \(data \+ bss\) of the core on cortex-m4 is 4 bytes, budget 0/ },
    { what: 'heap', code: '#include <stdlib.h>\nvoid *fb_alloc(size_t n) { return malloc(n); }\n', message: /over budget \(issue #14\): the core calls malloc on cortex-m4: only memcpy, memmove, memset and memcmp are allowed \(no heap\)/ },
  ];
  for (const excess of excesses) {
    const copy = mkdtempSync(join(tmpdir(), 'kmip-edge-fb-budget-'));
    for (const part of ['CMakeLists.txt', 'README.md', 'include', 'src', 'scripts']) cpSync(join(FIRMWARE, part), join(copy, part), { recursive: true });
    appendFileSync(join(copy, 'src/fb_device.c'), `\n${excess.code}`);
    if (excess.header) appendFileSync(join(copy, 'include/fb/fb_device.h'), `\n${excess.header}`);
    const result = await run('bash', [join(copy, 'scripts/size-table.sh')], { timeoutMs: 120_000 });
    assert.equal(result.status, 1, `${excess.what}: exit 1\n${result.stderr}`);
    assert.match(result.stderr, excess.message, excess.what);
    assert.match(result.stdout, /The core is \*\*over it\*\*/, `${excess.what}: the table says so too`);
  }
});
