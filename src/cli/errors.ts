import { KmipEdgeError } from '../errors.ts';

/** Bad command-line usage: exit 2 with a one-line reason (CLI.md conventions). */
export class UsageError extends KmipEdgeError {
  constructor(message: string) {
    super('CLI_USAGE', message);
  }
}
