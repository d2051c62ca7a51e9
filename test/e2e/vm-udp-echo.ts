/**
 * The host side of the VM test, run inside its throwaway netns (`nsenter --net=... node this.js
 * DECOY_ADDR`): a UDP echo on 127.0.0.1 (the allowlisted service; it answers "echo:" + the
 * payload) and decoys that must never hear from the guest: UDP on 127.0.0.1 at another port, TCP
 * on the echo's port, UDP at DECOY_ADDR on the echo's port. It prints one JSON line with its ports
 * once everything listens, then one JSON line per datagram or connection it gets.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer } from 'node:net';

const decoyAddr = process.argv[2] ?? '192.0.2.1';
const say = (o: object): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

function bindUdp(addr: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, addr, () => resolve(s));
  });
}

const echo = await bindUdp('127.0.0.1', 0);
const echoPort = echo.address().port;
echo.on('message', (msg, from) => {
  say({ on: 'echo', from: `${from.address}:${from.port}`, data: msg.toString('utf8') });
  echo.send(Buffer.concat([Buffer.from('echo:'), msg]), from.port, from.address);
});
const decoyUdp = await bindUdp('127.0.0.1', 0);
decoyUdp.on('message', (msg, from) => say({ on: 'decoy-udp', from: `${from.address}:${from.port}`, data: msg.toString('utf8') }));
const decoyOther = await bindUdp(decoyAddr, echoPort);
decoyOther.on('message', (msg, from) => say({ on: 'decoy-other-address', from: `${from.address}:${from.port}`, data: msg.toString('utf8') }));
const tcp = createServer((c) => {
  say({ on: 'decoy-tcp', from: `${c.remoteAddress}:${c.remotePort}` });
  c.destroy();
});
await new Promise<void>((resolve) => tcp.listen(echoPort, '127.0.0.1', resolve));
say({ ready: true, echoPort, decoyPort: decoyUdp.address().port });
// The test ends this process; stdin closing (the test died) ends it too.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
