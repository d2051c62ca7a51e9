/**
 * Every golden ruleset (test/golden/firewall-*.nft) is loaded for real by nft 1.0.6 into a fresh
 * namespace, twice (the second load is the atomic replace), then torn down: the text the unit
 * tests pin is text the kernel accepts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTeardown } from '../../src/network/firewall/nftables/nft-ruleset.js';
import { run, which } from '../../src/sys/runner.js';

const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');
const NS = `afg${randomBytes(3).toString('hex')}`;
const skip = process.getuid?.() !== 0 ? 'needs root' : !which('nft') ? 'needs nft' : false;
const nft = (input: string): Promise<unknown> => run(['nsenter', `--net=/run/netns/${NS}`, 'nft', '-f', '-'], { input });

describe('golden rulesets load into the kernel', { skip, concurrency: false }, () => {
  before(async () => {
    await run(['ip', 'netns', 'add', NS]);
  });
  after(async () => {
    await run(['ip', 'netns', 'del', NS], { allowFailure: true });
  });

  for (const file of readdirSync(GOLDEN).filter((f) => /^firewall-.*\.nft$/.test(f))) {
    it(file, async () => {
      const text = readFileSync(join(GOLDEN, file), 'utf8');
      await nft(text);
      await nft(text);
      const listed = (await run(['nsenter', `--net=/run/netns/${NS}`, 'nft', 'list', 'tables'])) as { stdout: string };
      assert.match(listed.stdout, /table inet arca\n/);
      assert.match(listed.stdout, /table inet arca_nat\n/);
      await nft(renderTeardown('arca'));
      const gone = (await run(['nsenter', `--net=/run/netns/${NS}`, 'nft', 'list', 'tables'])) as { stdout: string };
      assert.equal(gone.stdout.trim(), '');
    });
  }
});
