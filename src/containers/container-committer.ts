import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidParameter, errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { applyChanges } from '../images/change-parser.js';
import { CREATED_BY_DOCKER_VERSION } from '../images/image-importer.js';
import type { ImageConfigDoc, ImageRunConfig, ImageStore } from '../images/image-store.js';
import type { LayerRecord } from '../images/layer-store.js';
import { overlayDiffTar } from '../images/overlay-diff-tar.js';
import { familiarString, tagReference, type ImageReference } from '../images/reference.js';
import { INIT_LAYER_PATHS } from './archive/overlay-changes.js';
import type { EventBus } from '../events/event-bus.js';
import type { ContainerManager } from './container-manager.js';
import type { ContainerConfig, ContainerRecord } from './container-record.js';
import { mergeEnv } from './etc-files.js';

const log = logger('arca:containers:commit');

/** The diff id of a tar with no members (1024 zero bytes): Docker's `DigestSHA256EmptyTar`. */
const EMPTY_TAR_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

export interface CommitOptions {
  /** `repo` and `tag` of the query; no reference leaves the image untagged. */
  repo?: string;
  tag?: string;
  comment: string;
  author: string;
  /** Pause a running container while its layer is read (Docker's default). */
  pause: boolean;
  /** `--change` Dockerfile instructions. */
  changes: string[];
  /** The request body: a container config whose set fields win over the container's. */
  config?: Partial<ContainerConfig>;
}

/** Docker's commit reference rules: a repository, maybe a tag, never a digest. */
export function commitReference(repo: string | undefined, tag: string | undefined): ImageReference | undefined {
  return repo ? tagReference(repo, tag) : undefined;
}

/** The run config of the new image: the container's, the body's set fields over it, then the changes. */
function runConfigOf(c: ContainerRecord, body: Partial<ContainerConfig> | undefined, changes: string[]): ImageRunConfig {
  const cc = c.Config;
  const b = body ?? {};
  const pick = <T>(v: T | undefined | null, dflt: T): T => (v === undefined || v === null || (Array.isArray(v) && v.length === 0) || v === '' ? dflt : v);
  const base: ImageRunConfig & Record<string, unknown> = {
    Hostname: pick(b.Hostname, cc.Hostname),
    Domainname: pick(b.Domainname, cc.Domainname ?? ''),
    User: pick(b.User, cc.User),
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ExposedPorts: pick(b.ExposedPorts, cc.ExposedPorts ?? null) ?? undefined,
    Tty: cc.Tty,
    OpenStdin: cc.OpenStdin,
    StdinOnce: cc.StdinOnce,
    Env: b.Env?.length ? mergeEnv(cc.Env, b.Env) : cc.Env,
    Cmd: pick(b.Cmd, cc.Cmd),
    Image: cc.Image,
    Volumes: pick(b.Volumes, cc.Volumes),
    WorkingDir: pick(b.WorkingDir, cc.WorkingDir),
    Entrypoint: pick(b.Entrypoint, cc.Entrypoint),
    OnBuild: null,
    Labels: { ...(cc.Labels ?? {}), ...(b.Labels ?? {}) },
  };
  if (!base.ExposedPorts) delete base.ExposedPorts;
  const health = b.Healthcheck ?? cc.Healthcheck;
  if (health) base.Healthcheck = health as Record<string, unknown>;
  const stop = pick(b.StopSignal, cc.StopSignal ?? '');
  if (stop) base.StopSignal = stop;
  return applyChanges(base, changes);
}

/**
 * `docker commit`: the container's own layer (its overlay upper dir, whiteouts in image form,
 * the init-layer mount points left out) becomes a new layer on top of its image, with a config
 * from the container's, a history entry and the parent link. Everything is validated before the
 * layer is read, and the layer is registered before the image is recorded in one transaction, so
 * a failure leaves no image behind (an unowned layer is garbage collected with the scratch).
 */
export class ContainerCommitter {
  constructor(
    private readonly containers: ContainerManager,
    private readonly images: ImageStore,
    private readonly events?: EventBus,
  ) {}

  async commit(ref: string, opts: CommitOptions): Promise<string> {
    const c = this.containers.get(ref);
    const target = commitReference(opts.repo, opts.tag);
    const runConfig = runConfigOf(c, opts.config, opts.changes);
    const parent = this.images.get(c.ImageId);

    const scratch = await this.images.layers.tempDir();
    const pinned: string[] = [];
    let ok = false;
    let paused = false;
    try {
      if (opts.pause && c.State.Status === 'running') {
        await this.containers.pause(c.Id);
        paused = true;
      }
      const { diffId, tarPath } = await this.containers.exclusive(c.Id, async () => {
        const tarPath = join(scratch, 'layer.tar');
        const hash = createHash('sha256');
        await pipeline(
          Readable.from(overlayDiffTar(join(this.containers.dir(c.Id), 'upper'), { exclude: INIT_LAYER_PATHS })),
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              hash.update(chunk);
              cb(null, chunk);
            },
          }),
          createWriteStream(tarPath),
        );
        return { diffId: `sha256:${hash.digest('hex')}`, tarPath };
      });
      if (paused) {
        paused = false;
        await this.containers.unpause(c.Id).catch((e: unknown) => log.warn('unpause after commit failed', { error: errorMessage(e) }));
      }

      const layers: LayerRecord[] = [];
      for (const chain of parent.layers) {
        const l = this.images.layers.get(chain);
        if (!l) throw new InvalidParameter(`layer ${chain} of image ${parent.id} is missing`);
        this.images.layers.pin(chain);
        pinned.push(chain);
        layers.push(l);
      }
      const emptyLayer = diffId === EMPTY_TAR_DIFF_ID;
      if (!emptyLayer) {
        const top = await this.images.layers.register(tarPath, diffId, layers.length ? layers[layers.length - 1]!.chainId : null);
        pinned.push(top.chainId);
        layers.push(top);
      }
      const created = new Date().toISOString();
      const pc = parent.config;
      const history = [...(pc.history ?? [])];
      const entry: Record<string, unknown> = { created };
      if (opts.author) entry.author = opts.author;
      entry.created_by = [c.Path, ...c.Args].join(' ');
      if (opts.comment) entry.comment = opts.comment;
      if (emptyLayer) entry.empty_layer = true;
      history.push(entry);
      const config: ImageConfigDoc = {
        architecture: pc.architecture,
        ...(pc.variant ? { variant: pc.variant } : {}),
        ...(opts.author ? { author: opts.author } : {}),
        ...(opts.comment ? { comment: opts.comment } : {}),
        config: runConfig,
        container: c.Id,
        created,
        docker_version: CREATED_BY_DOCKER_VERSION,
        history,
        os: pc.os ?? 'linux',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      };
      const { id } = this.images.commit({ configJson: JSON.stringify(config), layers, parent: parent.id }, target ? [target] : [], { tagTime: true });
      this.events?.container('commit', c, { comment: opts.comment, imageID: id, imageRef: target ? familiarString(target) : '' });
      log.debug('committed', { container: c.Id.slice(0, 12), image: id, emptyLayer });
      ok = true;
      return id;
    } finally {
      if (paused) await this.containers.unpause(c.Id).catch((e: unknown) => log.warn('unpause after commit failed', { error: errorMessage(e) }));
      for (const chain of pinned) this.images.layers.unpin(chain);
      // A layer registered for an image that was never recorded belongs to nobody: drop it.
      if (!ok) await this.images.layers.removeUnused().catch((e: unknown) => log.warn('dropping an unowned layer failed', { error: errorMessage(e) }));
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
