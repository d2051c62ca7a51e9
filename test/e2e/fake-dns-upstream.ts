/**
 * A stand-in upstream resolver for end-to-end tests: `node fake-dns-upstream.js ADDRESS PORT ANSWER`
 * answers every UDP question with one A record, ANSWER, and prints `ready` once bound. Started
 * by a test inside a namespace it made (or a container's), killed by that test. An ANSWER with a
 * prefix length (`198.18.64.0/18`) hands each new name the next address of that block, so every
 * lookup of a new name teaches the learner a new address (a bench of the learning path needs it).
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { DnsType, decodeMessage, encodeMessage } from '../../src/network/dns/dns-codec.js';

const [address = '127.0.0.1', port = '53', answer = '192.0.2.1'] = process.argv.slice(2);
const s = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
const given = new Map<string, string>();
function answerFor(name: string): string {
  const slash = answer.indexOf('/');
  if (slash < 0) return answer;
  let a = given.get(name);
  if (a === undefined) {
    const base = answer.slice(0, slash).split('.').reduce((n, o) => n * 256 + Number(o), 0);
    const n = base + 1 + (given.size % (2 ** (32 - Number(answer.slice(slash + 1))) - 2));
    a = [24, 16, 8, 0].map((b) => (n >>> b) & 255).join('.');
    given.set(name, a);
  }
  return a;
}
s.on('message', (msg, from) => {
  try {
    const q = decodeMessage(msg);
    const question = q.questions[0];
    if (!question) return;
    const out = encodeMessage({
      ...q,
      header: { ...q.header, qr: true, ra: true },
      answers: question.type === DnsType.A ? [{ name: question.name, type: DnsType.A, class: 1, ttl: 30, data: answerFor(question.name) }] : [],
      additionals: [],
    });
    s.send(out, from.port, from.address);
  } catch {
    /* not a question: ignore */
  }
});
s.bind(Number(port), address, () => process.stdout.write('ready\n'));
