export * from './tables.generated.ts';
export { normalizeKmipName } from './names.ts';
export { formatKmipJson, parseKmipJson, toKmipJson, type KmipJson } from './json.ts';
export { DEFAULT_TEXT_FORM_LIMITS, TEXT_FORM_ERROR, type TextFormLimits } from './text-values.ts';
export { attributeValueTag, enumerationFor, enumerationText, maskFor, tagFromName, tagName } from './vocabulary.ts';
export { formatKmipXml, parseKmipXml, parseKmipXmlDocument } from './xml.ts';
