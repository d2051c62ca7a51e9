/**
 * A server that tells clients where they came from, for end-to-end tests of NAT:
 * `node peer-address-server.js ADDRESS PORT` answers every HTTP request with the client's address
 * as the server sees it (the body, no newline) and prints `ready` once listening. Started by a test
 * inside a namespace it owns (the "outside" netns), killed by that test.
 */
import { createServer } from 'node:http';

const [address = '127.0.0.1', port = '8080'] = process.argv.slice(2);
const server = createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'close' });
  res.end((req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''));
});
server.listen(Number(port), address, () => process.stdout.write('ready\n'));
