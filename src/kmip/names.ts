/**
 * KMIP Profiles 1.x §5.4.1.1 "Normalizing names": how a spec name ("Template-Attribute",
 * "HMAC-SHA256", "3DES") becomes the identifier used by the KMIP XML and JSON encodings
 * ("TemplateAttribute", "HMAC_SHA256", "DES3"). Applied to tag names, type names and
 * enumeration value names alike.
 */
export function normalizeKmipName(specName: string): string {
  // 1. Round brackets become spaces.
  let s = specName.replace(/[()]/g, ' ');
  // 2. A non-word character followed by a letter and then a lower-case letter starts a new word.
  s = s.replace(/[^\w\s]([a-zA-Z][a-z])/g, ' $1');
  // 3. Remaining non-word characters (white space aside) become underscores.
  s = s.replace(/[^\w\s]/g, '_');
  const words = s.split(/\s+/).filter((w) => w.length > 0);
  // 4. Leading digits of the first word move to its end ("3DES" → "DES3").
  if (words.length > 0) {
    const first = words[0]!;
    const digits = /^\d+/.exec(first)?.[0] ?? '';
    words[0] = first.slice(digits.length) + digits;
  }
  // 5. Capitalize the first letter of each word; 6. join without spaces.
  return words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}
