import { request } from 'node:http';

/** The daemon's socket when neither `-H` nor `DOCKER_HOST` names one (`arca daemon`'s default). */
export const DEFAULT_HOST = 'unix:///var/run/arca.sock';

/** One answer of the daemon. */
export interface EngineResponse {
  status: number;
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown;
}

/** The daemon's error text (`{"message": ...}`), else the status. */
export function engineMessage(r: EngineResponse): string {
  const m = (r.body as { message?: unknown } | undefined)?.message;
  return typeof m === 'string' ? m : `the daemon answered ${r.status}`;
}

/**
 * A small client of the Engine API over a unix socket, found as docker finds it: `-H`, then
 * `DOCKER_HOST`, then arca's default socket.
 */
export class EngineClient {
  readonly socketPath: string;

  constructor(host: string | undefined = process.env['DOCKER_HOST'] || undefined) {
    const h = host ?? DEFAULT_HOST;
    if (!h.startsWith('unix://')) throw new Error(`unsupported host "${h}": arca speaks to its daemon over unix:// sockets only`);
    this.socketPath = h.slice('unix://'.length);
  }

  /** Sends one request; a JSON value is sent as JSON, a string as text. Never throws on HTTP errors. */
  call(method: string, path: string, body?: unknown): Promise<EngineResponse> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = { Host: 'arca' };
    if (payload !== undefined) {
      headers['Content-Type'] = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8').trim();
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = { message: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        // docker's wording, so scripts and users recognise it.
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
          reject(new Error(`Cannot connect to the arca daemon at unix://${this.socketPath}. Is the daemon running?`));
        } else reject(e);
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }
}
