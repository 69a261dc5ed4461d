/**
 * The OASIS KMIP test cases in `../shared/kmip/testcases` (KMIP XML), with their placeholders
 * replaced deterministically so that every message is concrete.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('../../../shared/kmip/testcases/', import.meta.url));

/** `$NOW` in every message: the date FACTS.md §7 uses. */
export const NOW_SECONDS = Date.UTC(2017, 10, 22) / 1000;

export function corpusFiles(): string[] {
  if (!existsSync(CORPUS_DIR)) return [];
  return readdirSync(CORPUS_DIR)
    .filter((v) => /^v1\.\d$/.test(v))
    .sort()
    .flatMap((v) => readdirSync(CORPUS_DIR + v).filter((f) => f.endsWith('.xml')).sort().map((f) => `${v}/${f}`));
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('.000Z', '+00:00');
}

/** Replaces `$NOW±N`, `$UNIQUE_IDENTIFIER_n` and the Byte String placeholders (`$DATA_0`, …). */
export function substitutePlaceholders(xml: string): string {
  return xml.replace(/value="\$([A-Z_]+?)(?:_?(\d+))?([+-]\d+)?"/g, (_match, name: string, index: string | undefined, delta: string | undefined) => {
    if (name === 'NOW') return `value="${isoSeconds(NOW_SECONDS + Number(delta ?? 0))}"`;
    if (name === 'UNIQUE_IDENTIFIER') return `value="uid-${index ?? 'x'}"`;
    const digest = createHash('sha256').update(`${name}_${index ?? ''}`).digest('hex');
    return `value="${digest.slice(0, 32)}"`;
  });
}

export function readCorpusFile(relative: string): string {
  return substitutePlaceholders(readFileSync(CORPUS_DIR + relative, 'utf8'));
}
