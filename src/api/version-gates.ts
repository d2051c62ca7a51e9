/**
 * Fields Docker adds or drops by the API version a client asks for, applied at the API edge to
 * the views the managers build for the newest version. Only the ones older clients read are here:
 * docker-compose 1.29 talks API 1.38, docker-py and the CLI of their day 1.25-1.41.
 */
import { compareVersions } from './router.js';

const before = (version: string, v: string): boolean => compareVersions(version, v) < 0;

/** Networks whose endpoints moby calls user-defined (not `bridge`, `host`, `none` or `container:`). */
function userDefined(network: string): boolean {
  return !['bridge', 'default', 'host', 'none'].includes(network) && !network.startsWith('container:');
}

/**
 * Container inspect before API 1.45: the container's short id is one of its aliases on every
 * user-defined network (moby's inspect router adds it back for old clients; dockerd 20.10 added
 * it at connect). docker-compose 1.29 looks for it (`short_id_alias_exists`) and otherwise
 * disconnects and reconnects the container before each start.
 */
export function gateContainerInspect(view: Record<string, unknown>, version: string): Record<string, unknown> {
  if (!before(version, '1.45')) return view;
  const settings = view['NetworkSettings'] as { Networks?: Record<string, { Aliases: string[] | null }> } | undefined;
  const shortId = String(view['Id']).slice(0, 12);
  for (const [name, ep] of Object.entries(settings?.Networks ?? {})) {
    if (!userDefined(name)) continue;
    const aliases = ep.Aliases ?? [];
    if (!aliases.includes(shortId)) ep.Aliases = [...aliases, shortId];
  }
  return view;
}

/** `GET /system/df` before API 1.44: each image's `VirtualSize`, equal to its Size (moby `getDiskUsage`). */
export function gateDiskUsage(du: Record<string, unknown>, version: string): Record<string, unknown> {
  if (!before(version, '1.44') || !Array.isArray(du['Images'])) return du;
  du['Images'] = (du['Images'] as Record<string, unknown>[]).map((img) => ({ ...img, VirtualSize: img['Size'] }));
  return du;
}
