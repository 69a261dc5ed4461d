/**
 * src/iso-time.ts writes what Date.prototype.toISOString writes, without touching ICU: on a
 * full-ICU Node the first toISOString (or localeCompare, toLocaleString, Intl, the local-time
 * getters) keeps megabytes of ICU data resident for the life of the agent (issue #15, resident
 * memory). So the agent's source calls none of them; this test fails on the first one that comes
 * back, naming the file and line.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { isoTime } from '../../src/iso-time.ts';
import { ROOT } from '../helpers/cli.ts';

const YEAR_0 = Date.parse('0000-01-01T00:00:00.000Z');
const YEAR_10000 = Date.parse('+010000-01-01T00:00:00.000Z');

describe('isoTime', () => {
  it('writes what toISOString writes, at the edges and for 100,000 random times in years 0000–9999', () => {
    const edges = [0, -1, 1, YEAR_0, YEAR_0 + 1, YEAR_10000 - 1, Date.parse('2024-02-29T23:59:59.999Z'), Date.parse('1969-12-31T23:59:59.999Z')];
    for (const at of edges) assert.equal(isoTime(at), new Date(at).toISOString(), `at ${at}`);
    for (let i = 0; i < 100_000; i++) {
      const at = YEAR_0 + Math.floor(Math.random() * (YEAR_10000 - YEAR_0));
      assert.equal(isoTime(at), new Date(at).toISOString(), `at ${at}`);
    }
    const date = new Date(1_764_711_805_123);
    assert.equal(isoTime(date), date.toISOString(), 'a Date as well as milliseconds');
  });

  it('leaves the six-digit years and invalid times to toISOString (its text, its RangeError)', () => {
    for (const at of [YEAR_0 - 1, YEAR_10000, -8.64e15, 8.64e15]) assert.equal(isoTime(at), new Date(at).toISOString(), `at ${at}`);
    assert.throws(() => isoTime(Number.NaN), RangeError);
    assert.throws(() => isoTime(8.64e15 + 1), RangeError);
  });

  it('is now when given nothing', () => {
    const before = Date.now();
    const at = Date.parse(isoTime());
    assert.ok(at >= before && at <= Date.now(), `${at} within the call`);
  });
});

/** The calls that load ICU data on a full-ICU Node (measured with /proc/PID/pagemap; src/iso-time.ts). */
const ICU_CALLS = /\.toISOString\(|\.localeCompare\(|\.toLocale\w*\(|\bIntl\.|\.get(FullYear|Month|Date|Day|Hours|Minutes|Seconds|Milliseconds|TimezoneOffset)\(|\.to(Date|Time)String\(/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

it('src/ calls nothing that loads ICU data, but in src/iso-time.ts and the benchmarks', () => {
  const found: string[] = [];
  // src/bench: the benchmarks' own processes print figures with thousands separators for a
  // reader; what they measure runs in the agent's code, which is scanned.
  const files = sourceFiles(join(ROOT, 'src')).filter((path) => !path.endsWith('iso-time.ts') && !relative(ROOT, path).startsWith('src/bench/'));
  assert.ok(files.length > 100, `the sources were read: ${files.length}`);
  for (const path of files) {
    readFileSync(path, 'utf8').split('\n').forEach((line, index) => {
      if (ICU_CALLS.test(line)) found.push(`${relative(ROOT, path)}:${index + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, [], 'use isoTime (src/iso-time.ts), the UTC getters, or < and > on text');
});
