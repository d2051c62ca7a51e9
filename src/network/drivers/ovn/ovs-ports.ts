/**
 * Ports of the integration bridge in the Open_vSwitch database: one per veth end in the switch
 * namespace, bound to its logical port by `external_ids:iface-id`. ovs-vswitchd opens the device
 * by name (netdev-linux, AF_PACKET) inside its namespace.
 */
import type { OvsdbSession } from '../../../ovsdb/ovsdb-session.js';
import { map, namedUuid, set, type OvsdbAtom } from '../../../ovsdb/ovsdb-values.js';

export class OvsPorts {
  constructor(
    private readonly ovs: OvsdbSession,
    private readonly bridge: string,
  ) {}

  /** Adds (or re-binds) the port `name` bound to logical port `lsp`. */
  async add(name: string, lsp: string): Promise<void> {
    const [found] = await this.ovs.transact([{ op: 'select', table: 'Interface', where: [['name', '==', name]], columns: ['_uuid', 'external_ids'] }]);
    if (found?.rows?.length) {
      await this.ovs.transact([{ op: 'update', table: 'Interface', where: [['name', '==', name]], row: { external_ids: map({ 'iface-id': lsp }) } }]);
      return;
    }
    await this.ovs.transact([
      { op: 'insert', table: 'Interface', 'uuid-name': 'i', row: { name, external_ids: map({ 'iface-id': lsp }) } },
      { op: 'insert', table: 'Port', 'uuid-name': 'p', row: { name, interfaces: set([namedUuid('i')]) } },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', this.bridge]], mutations: [['ports', 'insert', set([namedUuid('p')])]] },
    ]);
  }

  /** Removes the port `name`; absent is success. */
  async remove(name: string): Promise<void> {
    const [r] = await this.ovs.transact([{ op: 'select', table: 'Port', where: [['name', '==', name]], columns: ['_uuid'] }]);
    const rows = r?.rows ?? [];
    if (!rows.length) return;
    await this.ovs.transact([
      { op: 'mutate', table: 'Bridge', where: [['name', '==', this.bridge]], mutations: [['ports', 'delete', set(rows.map((x) => x['_uuid'] as OvsdbAtom))]] },
    ]);
  }

  /** Names of the bridge's ports. */
  async names(): Promise<string[]> {
    const [r] = await this.ovs.transact([{ op: 'select', table: 'Port', where: [], columns: ['name'] }]);
    return (r?.rows ?? []).map((x) => String(x['name']));
  }
}
