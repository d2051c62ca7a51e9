import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';

/** Writes a request body to `<dir>/<name>` without holding it in memory; returns the path. */
export async function spoolBody(body: Readable, dir: string, name: string): Promise<string> {
  const p = join(dir, name);
  await pipeline(body, createWriteStream(p, { mode: 0o600 }));
  return p;
}
