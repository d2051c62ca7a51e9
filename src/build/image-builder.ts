import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { NotFound } from '../errors.js';
import { NO_EVENTS, type EventSink } from '../events/event-bus.js';
import { logger } from '../log.js';
import type { ImageRecord, ImageStore } from '../images/image-store.js';
import { shortId } from '../images/image-store.js';
import { pullImage } from '../images/image-puller.js';
import type { ProgressStream } from '../images/progress-stream.js';
import { familiarString, isIdentifier, parseNormalizedNamed, referenceString, withDefaultTag, type ImageReference } from '../images/reference.js';
import type { RegistryAuth } from '../images/registry-client.js';
import { unpackContext } from './build-context.js';
import type { BuildNetwork } from './build-network.js';
import { BuildOutput } from './build-output.js';
import { BuildahError, type BuildahBuilder } from './buildah-builder.js';
import { summarizeDockerfile } from './dockerfile-frontend.js';

const log = logger('arca:build');

/** `POST /build` after decoding its query. */
export interface BuildRequest {
  /** Path of the Dockerfile in the context ('' for `Dockerfile`). */
  dockerfile: string;
  tags: ImageReference[];
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  target?: string;
  noCache: boolean;
  /** Pull base images first even when arca has them. */
  pull: boolean;
  quiet: boolean;
  networkMode: string;
  platform?: string;
  extraHosts: string[];
  shmSize?: number;
  /** Credentials for pulls of base images, by registry domain (`X-Registry-Config`). */
  authFor?: (domain: string) => RegistryAuth | undefined;
}

/** A failure the client should see in the stream, already in Docker's words. */
export class BuildFailed extends Error {}

/**
 * `docker build`: unpacks the context, checks the Dockerfile, hands its base images from arca's
 * store to buildah (pulling what arca lacks), runs buildah with the RUN steps' network from
 * arca, and brings the result back into arca's store under the requested tags. Everything a build
 * makes on the way (scratch folders, the namespace) is removed whatever happens.
 */
export class ImageBuilder {
  /** Where `docker events` learns of cache prunes; the daemon wires its bus. */
  events: EventSink = NO_EVENTS;

  constructor(
    private readonly images: ImageStore,
    private readonly buildah: BuildahBuilder,
    private readonly network: BuildNetwork,
  ) {}

  async build(body: Readable, req: BuildRequest, out: ProgressStream, signal: AbortSignal): Promise<string> {
    const scratch = await this.buildah.scratch();
    try {
      const ctx = await unpackContext(body, join(scratch, 'ctx'), req.dockerfile);
      const summary = summarizeDockerfile(ctx.dockerfile, req.buildArgs, req.target);
      const firstFrom = summary.instructions.findIndex((i) => i.keyword === 'FROM');
      const steps = summary.steps - firstFrom;
      // Docker names the first step before it fetches its base: a pull's progress, or its failure,
      // comes after "Step 1/n : FROM ..." in the stream (and a failure is the stream's, status 200).
      if (!req.quiet) out.stream(`Step 1/${steps} : FROM ${summary.instructions[firstFrom]!.args}\n`);
      const baseIds = new Map<string, string>();
      for (const name of summary.images) {
        const img = await this.baseImage(name, req, out);
        baseIds.set(name, shortId(img.id));
        await this.buildah.provide(img, buildahName(name));
      }
      const progress = new BuildOutput(out, req.quiet, steps, baseIds, !req.quiet);
      const sandbox = await this.network.open(req.networkMode, req.extraHosts);
      let id: string;
      try {
        id = await this.buildah.build({
          contextDir: ctx.dir,
          dockerfilePath: ctx.dockerfilePath,
          buildArgs: req.buildArgs,
          labels: req.labels,
          target: req.target,
          noCache: req.noCache,
          platform: req.platform,
          shmSize: req.shmSize,
          network: sandbox.network,
          networkArgs: sandbox.args,
          signal,
          onLine: (l, stream) => progress.line(l, stream),
        });
      } catch (e) {
        if (e instanceof BuildahError) throw new BuildFailed(progress.errorText(e.message));
        throw e;
      } finally {
        await sandbox.close();
      }
      progress.finish();
      const img = await this.buildah.export(id);
      for (const t of req.tags) this.images.tag(img, t);
      out.write({ aux: { ID: img.id } });
      if (req.quiet) out.stream(`${img.id}\n`);
      else {
        out.stream(`Successfully built ${shortId(img.id)}\n`);
        for (const t of req.tags) out.stream(`Successfully tagged ${familiarString(t)}\n`);
      }
      log.info('image built', { id: shortId(img.id), tags: req.tags.map(familiarString) });
      return img.id;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /** A FROM or COPY --from image from arca's store; pulled (into arca) when missing or asked to. */
  private async baseImage(name: string, req: BuildRequest, out: ProgressStream): Promise<ImageRecord> {
    const byId = isIdentifier(name) || /^sha256:[a-f0-9]{64}$/.test(name);
    const pull = async (): Promise<void> => {
      const ref = pullRef(name);
      await pullImage(this.images, ref, out, { auth: req.authFor?.(ref.domain), insecureRegistries: this.images.insecureRegistries });
    };
    if (!byId && req.pull) {
      await pull();
      return this.images.get(name);
    }
    try {
      return this.images.get(name);
    } catch (e) {
      if (!(e instanceof NotFound) || byId) throw e;
    }
    await pull();
    return this.images.get(name);
  }

  /** `docker builder prune`: buildah's cache and its copies of base images. */
  async prune(): Promise<void> {
    await this.buildah.prune();
    this.events.emit('builder', 'prune', '', { reclaimed: '0' });
  }
}

function pullRef(name: string): ImageReference {
  const ref = parseNormalizedNamed(name);
  return ref.digest ? ref : withDefaultTag(ref);
}

/** The name buildah resolves a FROM to with arca's registries.conf; none for ids and digests. */
function buildahName(name: string): string | undefined {
  if (isIdentifier(name) || /^sha256:/.test(name)) return undefined;
  const ref = parseNormalizedNamed(name);
  if (ref.digest) return undefined;
  return referenceString(withDefaultTag(ref));
}
