import { InvalidParameter } from '../errors.js';

/** The characters Docker allows in container and volume names, as Docker prints them in errors. */
export const RESTRICTED_NAME_CHARS = '[a-zA-Z0-9][a-zA-Z0-9_.-]';
const RESTRICTED_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * Quotes a string the way Go's `%q` does, so that messages match Docker's byte for byte:
 * printable characters stay as they are, control characters become `\n`, `\t`, `\x01`, `\u0085`.
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if ((cp >= 0x80 && cp < 0xa0) || cp === 0xad || cp === 0xfeff || (cp >= 0xd800 && cp < 0xe000)) {
      out += `\\u${cp.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return out + '"';
}

/**
 * Why `name` is not a valid local volume name, in Docker's words, or undefined when it is valid.
 * Go measures the length in bytes, so a single multi-byte character is "invalid characters",
 * not "too short".
 */
export function volumeNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name) === 1) {
    return 'volume name is too short, names should be at least two alphanumeric characters';
  }
  if (!RESTRICTED_NAME.test(name)) {
    return `${goQuote(name)} includes invalid characters for a local volume name, only ${goQuote(
      RESTRICTED_NAME_CHARS,
    )} are allowed. If you intended to pass a host directory, use absolute path`;
  }
  return undefined;
}

/** Throws Docker's `create <name>: ...` error when `name` is not a valid local volume name. */
export function validateVolumeName(name: string): void {
  const problem = volumeNameProblem(name);
  if (problem) throw new InvalidParameter(`create ${name}: ${problem}`);
}
