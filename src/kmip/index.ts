export * from './tables.generated.ts';
export { normalizeKmipName } from './names.ts';
export { formatKmipJson, parseKmipJson, toKmipJson, type KmipJson } from './json.ts';
export { TEXT_FORM_ERROR } from './text-values.ts';
export { attributeValueTag, enumerationFor, enumerationText, maskFor, tagFromName, tagName } from './vocabulary.ts';
export { DEFAULT_TEXT_FORM_LIMITS, formatKmipXml, parseKmipXml, parseKmipXmlDocument, type TextFormLimits } from './xml.ts';
