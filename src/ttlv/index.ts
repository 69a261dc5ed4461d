export { decodeTtlv } from './decode.ts';
export { encodeTtlv } from './encode.ts';
export { TtlvError, type TtlvErrorCode } from './errors.ts';
export { TtlvFramer } from './framer.ts';
export { fromHex, toHex } from './hex.ts';
export * from './item.ts';
export { DEFAULT_TTLV_LIMITS, resolveTtlvLimits, type TtlvLimits } from './limits.ts';
export * from './build.ts';
