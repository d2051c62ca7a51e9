/**
 * A stand-in upstream resolver for end-to-end tests: `node fake-dns-upstream.js ADDRESS PORT ANSWER`
 * answers every UDP question with one A record, ANSWER, and prints `ready` once bound. Started
 * by a test inside a namespace it made (or a container's), killed by that test.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { DnsType, decodeMessage, encodeMessage } from '../../src/network/dns/dns-codec.js';

const [address = '127.0.0.1', port = '53', answer = '192.0.2.1'] = process.argv.slice(2);
const s = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
s.on('message', (msg, from) => {
  try {
    const q = decodeMessage(msg);
    const question = q.questions[0];
    if (!question) return;
    const out = encodeMessage({
      ...q,
      header: { ...q.header, qr: true, ra: true },
      answers: question.type === DnsType.A ? [{ name: question.name, type: DnsType.A, class: 1, ttl: 30, data: answer }] : [],
      additionals: [],
    });
    s.send(out, from.port, from.address);
  } catch {
    /* not a question: ignore */
  }
});
s.bind(Number(port), address, () => process.stdout.write('ready\n'));
