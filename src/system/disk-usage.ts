import type { Daemon } from '../daemon.js';
import { InvalidParameter } from '../errors.js';
import { containerSize } from '../containers/container-size.js';
import { listView } from '../containers/container-view.js';
import { directorySize } from '../volumes/directory-size.js';

/** The object kinds `GET /system/df?type=` names (API ≥ 1.42). */
export type DiskUsageKind = 'container' | 'image' | 'volume' | 'build-cache';

const KINDS: readonly DiskUsageKind[] = ['container', 'image', 'volume', 'build-cache'];

/** The `type` values of a df request; all kinds when none is given. */
export function diskUsageKinds(types: string[]): Set<DiskUsageKind> {
  if (types.length === 0) return new Set(KINDS);
  for (const t of types) if (!KINDS.includes(t as DiskUsageKind)) throw new InvalidParameter(`unknown object type: ${t}`);
  return new Set(types as DiskUsageKind[]);
}

/**
 * `docker system df` (moby `types.DiskUsage`): images with their shared size and container
 * count, containers with SizeRw/SizeRootFs, local volumes with size and reference count. Kinds
 * not asked for are null, as moby leaves them. arca's builder keeps no cache of its own in arca's
 * store, so BuildCache is empty.
 */
export function diskUsage(d: Daemon, kinds: Set<DiskUsageKind>): Record<string, unknown> {
  const out: Record<string, unknown> = { LayersSize: 0, Images: null, Containers: null, Volumes: null, BuildCache: null };
  if (kinds.has('image')) {
    const images = d.images.list();
    const use = new Map<string, number>();
    for (const img of images) for (const l of img.layers) use.set(l, (use.get(l) ?? 0) + 1);
    let layers = 0;
    for (const l of use.keys()) layers += d.images.layers.get(l)?.size ?? 0;
    out['LayersSize'] = layers;
    out['Images'] = images
      // moby lists top-level images only: an untagged parent of another image is not one.
      .filter((img) => img.repoTags.length > 0 || img.repoDigests.length > 0 || d.images.children(img.id).length === 0)
      .map((img) => ({
        Containers: d.images.usersOf(img.id).length,
        Created: Math.floor(Date.parse(img.created) / 1000),
        Id: img.id,
        Labels: img.config.config?.Labels ?? null,
        ParentId: img.parent,
        RepoDigests: img.repoDigests,
        RepoTags: img.repoTags,
        SharedSize: img.layers.filter((l) => (use.get(l) ?? 0) > 1).reduce((n, l) => n + (d.images.layers.get(l)?.size ?? 0), 0),
        Size: img.size,
      }));
  }
  if (kinds.has('container')) {
    out['Containers'] = d.containers.all().map((c) => ({
      ...listView(d, c),
      ...containerSize(d.containers.dir(c.Id), d.images.byId(c.ImageId)?.size ?? 0),
    }));
  }
  if (kinds.has('volume')) {
    out['Volumes'] = d.volumes.list().map((v) => ({
      ...v,
      UsageData: { Size: directorySize(v.Mountpoint), RefCount: d.containers.containersUsingVolume(v.Name).length },
    }));
  }
  if (kinds.has('build-cache')) out['BuildCache'] = [];
  return out;
}
