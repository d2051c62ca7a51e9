import { randomBytes } from 'node:crypto';

const LEFT = [
  'admiring', 'agitated', 'amazing', 'angry', 'awesome', 'blissful', 'bold', 'brave', 'busy', 'charming',
  'clever', 'compassionate', 'confident', 'cool', 'dazzling', 'determined', 'eager', 'ecstatic', 'elegant',
  'epic', 'festive', 'focused', 'friendly', 'gallant', 'gifted', 'happy', 'hopeful', 'jolly', 'keen', 'kind',
  'loving', 'modest', 'nice', 'nifty', 'optimistic', 'peaceful', 'quirky', 'relaxed', 'serene', 'sharp',
  'stoic', 'sweet', 'tender', 'trusting', 'upbeat', 'vibrant', 'wizardly', 'youthful', 'zealous',
];
const RIGHT = [
  'agnesi', 'albattani', 'allen', 'archimedes', 'babbage', 'bardeen', 'bell', 'blackwell', 'bohr', 'cerf',
  'curie', 'darwin', 'dijkstra', 'einstein', 'euler', 'feynman', 'gauss', 'goldberg', 'hamilton', 'hopper',
  'hypatia', 'kalam', 'knuth', 'lamport', 'leavitt', 'lovelace', 'mayer', 'mccarthy', 'meitner', 'noether',
  'pascal', 'perlman', 'ritchie', 'shannon', 'sinoussi', 'thompson', 'torvalds', 'turing', 'wozniak', 'yonath',
];

function pick<T>(xs: T[]): T {
  return xs[randomBytes(2).readUInt16BE(0) % xs.length]!;
}

/** A Docker-style random name, `adjective_scientist`; retries add a digit as Docker does. */
export function randomName(retry: number): string {
  const n = `${pick(LEFT)}_${pick(RIGHT)}`;
  return retry > 0 ? `${n}${randomBytes(1)[0]! % 10}` : n;
}

export function newId(): string {
  return randomBytes(32).toString('hex');
}
