/** The `wireguard` driver passes the shared driver compliance suite, unchanged. */
import { runDriverCompliance } from './driver-compliance.js';
import { bridgeOf, skipWithoutWireguardGo, wireguardLeftovers } from './wireguard-support.js';

runDriverCompliance('wireguard', {
  // The network's bridge of underlay ports in the daemon's namespace (the endpoints' hidden
  // namespaces come and go with containers: the leftovers check covers them).
  hostLinksOf: (id) => [bridgeOf(id)],
  leftoversOf: (d, ids) => wireguardLeftovers(d, ids),
  skip: skipWithoutWireguardGo || undefined,
});
