/**
 * The one base error of kmip-edge. Every failure that a peer, an operator or a caller can cause
 * carries a stable string `code` (documented next to where it is thrown) and, where another error
 * led to it, an ES2022 `cause`. Programmer errors stay TypeError/RangeError.
 */
export class KmipEdgeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return 'KmipEdgeError';
  }
}

export function isKmipEdgeError(error: unknown, code?: string): error is KmipEdgeError {
  return error instanceof KmipEdgeError && (code === undefined || error.code === code);
}
