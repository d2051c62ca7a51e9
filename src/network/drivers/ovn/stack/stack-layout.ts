import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** Where the stack keeps its files; see {@link OvnStackOptions}. */
export interface OvnStackOptions {
  /** Persistent: `<root>/network/ovn` (nb.db, sb.db, conf.db, logs/). */
  stateDir: string;
  /** `<execRoot>/ovn`: sockets, pidfiles, control sockets. Socket paths must stay under ~100 bytes. */
  runDir: string;
  /** The switch's network namespace, `arca-<tag>-ovs` (the e2e harness deletes `arca-<tag>-*`). */
  switchNetns: string;
  /** The chassis name (Open_vSwitch `external_ids:system-id`), `arca-<tag>`. */
  chassis: string;
}

/** The options a daemon with this root and exec-root uses (its tag is the one in its netns names). */
export function stackOptionsFor(root: string, execRoot: string): OvnStackOptions {
  const tag = createHash('sha256').update(root).digest('hex').slice(0, 6);
  return {
    stateDir: join(root, 'network', 'ovn'),
    runDir: join(execRoot, 'ovn'),
    switchNetns: `arca-${tag}-ovs`,
    chassis: `arca-${tag}`,
  };
}

/**
 * Every path of the stack. Socket, pidfile and control-socket names are the ones OVS's and OVN's
 * tools look for by default under OVS_RUNDIR/OVN_RUNDIR (`db.sock`, `ovnnb_db.sock`,
 * `ovs-vswitchd.pid`...), so `OVS_RUNDIR=<runDir> OVN_RUNDIR=<runDir> ovn-nbctl show` (or ovs-vsctl,
 * ovs-appctl -t ovs-vswitchd, ovs-ofctl dump-flows br-int) works for a person debugging.
 */
export class StackLayout {
  readonly logDir: string;
  readonly nbDb: string;
  readonly sbDb: string;
  readonly ovsDb: string;
  readonly nbSocket: string;
  readonly sbSocket: string;
  readonly ovsSocket: string;
  /** vswitchd's OpenFlow socket for br-int, which ovn-controller finds through OVS_RUNDIR. */
  readonly bridgeMgmt: string;
  readonly netnsPath: string;

  constructor(readonly opts: OvnStackOptions) {
    const { stateDir, runDir } = opts;
    this.logDir = join(stateDir, 'logs');
    this.nbDb = join(stateDir, 'nb.db');
    this.sbDb = join(stateDir, 'sb.db');
    this.ovsDb = join(stateDir, 'conf.db');
    this.nbSocket = join(runDir, 'ovnnb_db.sock');
    this.sbSocket = join(runDir, 'ovnsb_db.sock');
    this.ovsSocket = join(runDir, 'db.sock');
    this.bridgeMgmt = join(runDir, 'br-int.mgmt');
    this.netnsPath = `/run/netns/${opts.switchNetns}`;
  }

  run(file: string): string {
    return join(this.opts.runDir, file);
  }

  log(name: string): string {
    return join(this.logDir, `${name}.log`);
  }

  /**
   * The environment of every stack process and tool: OVS and OVN look for their sockets, logs and
   * databases here, never in /var/run/openvswitch or /etc/openvswitch (a system OVS stays
   * untouched). ovn-controller finds `br-int.mgmt` through OVS_RUNDIR, so it must equal vswitchd's.
   */
  env(): NodeJS.ProcessEnv {
    const { stateDir, runDir } = this.opts;
    return {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      OVS_RUNDIR: runDir,
      OVS_LOGDIR: this.logDir,
      OVS_DBDIR: stateDir,
      OVS_SYSCONFDIR: stateDir,
      OVN_RUNDIR: runDir,
      OVN_LOGDIR: this.logDir,
      OVN_DBDIR: stateDir,
      OVN_SYSCONFDIR: stateDir,
    };
  }
}
