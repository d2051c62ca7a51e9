/**
 * The floor under `docker cp` into a container for any daemon built on Node's HTTP server: an
 * Engine API stand-in that answers what the CLI asks before a copy (`/_ping`, the version, the
 * HEAD stat of the destination, always a folder) and throws the PUT body away. The CLI's own
 * work (reading the file, its tar, the chunked upload) and Node's receive are all it leaves.
 */
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';

const API_VERSION = '1.47';
/** Go `os.FileMode` of a 0755 folder (ModeDir is 1 << 31). */
const DIR_MODE = 2 ** 31 + 0o755;

export interface DiscardServer {
  socket: string;
  close(): Promise<void>;
}

export async function startDiscardServer(socket: string): Promise<DiscardServer> {
  const stat = Buffer.from(JSON.stringify({ name: 'tmp', size: 4096, mode: DIR_MODE, mtime: '2025-01-01T00:00:00Z', linkTarget: '' })).toString(
    'base64',
  );
  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    res.setHeader('Api-Version', API_VERSION);
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'X-Docker-Container-Path-Stat': stat });
      res.end();
      return;
    }
    req.on('data', () => {});
    req.on('end', () => {
      if (req.url?.endsWith('/version')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ApiVersion: API_VERSION, Version: '28.0.0' }));
      } else res.end(req.method === 'PUT' ? '' : 'OK');
    });
  });
  rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    socket,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
