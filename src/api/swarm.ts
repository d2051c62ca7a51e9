import type { Router } from './router.js';
import { Unavailable } from '../errors.js';

/**
 * moby `daemon/cluster/cluster.go` errNoManager, the branch for a node that never joined a swarm:
 * every manager-gated call (inspect, update, unlock key, nodes, services, tasks, secrets, configs).
 */
const NOT_SWARM_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

/** moby `daemon/cluster/errors.go` errNoSwarm: leaving a swarm that was never joined. */
const NOT_IN_SWARM = 'This node is not part of a swarm';

/** arca has no cluster mode to start or join. */
const NO_SWARM_MODE = 'arca does not support swarm mode: this node cannot initialize or join a swarm';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD'];

/**
 * The swarm-only endpoints, answered as a dockerd outside any swarm answers them: 503. Clients
 * rely on the code (docker-py's `leave_swarm(force=True)` treats 503 as nothing to leave; the CLI
 * prints the message), a 404 would read as an old daemon without the API.
 */
export function registerSwarm(r: Router): void {
  const refuse = (message: string) => (): never => {
    throw new Unavailable(message);
  };
  r.post('/swarm/leave', refuse(NOT_IN_SWARM));
  r.post('/swarm/init', refuse(NO_SWARM_MODE));
  r.post('/swarm/join', refuse(NO_SWARM_MODE));
  for (const base of ['/swarm', '/nodes', '/services', '/tasks', '/secrets', '/configs']) {
    for (const m of METHODS) {
      r.add(m, base, refuse(NOT_SWARM_MANAGER));
      r.add(m, `${base}/{*}`, refuse(NOT_SWARM_MANAGER));
    }
  }
}
