import type { Knex } from 'knex';
import type { UpdateOptions, VmFilter, VmRepository } from '../../contracts/repositories.js';
import { newId } from '../../domain/ids.js';
import type { VmNic } from '../../domain/network.js';
import { type NewVm, type Vm, type VmPatch, validateNewVm, validateVmPatch } from '../../domain/vm.js';
import { fromJson, toDate, toJson, toNumber } from '../rows.js';
import { applyPage, deleteVersioned, guarded, notFound, type Row, updateVersioned } from './common.js';

const TABLE = 'vms';
const WHAT = 'VM';

function rowToVm(row: Row): Vm {
  return {
    id: row.id as string,
    name: row.name as string,
    nodeId: row.node_id as string,
    cpu: toNumber(row.cpu),
    memoryMiB: toNumber(row.memory_mib),
    firmware: row.firmware as Vm['firmware'],
    disks: fromJson(row.disks),
    cdroms: fromJson(row.cdroms),
    nics: fromJson(row.nics),
    bootImageId: (row.boot_image_id as string | null) ?? null,
    state: row.state as Vm['state'],
    error: (row.error as string | null) ?? null,
    labels: fromJson(row.labels),
    version: toNumber(row.version),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function vmToColumns(vm: VmPatch & { name?: string; nodeId?: string }): Row {
  const row: Row = {};
  if (vm.name !== undefined) row.name = vm.name;
  if (vm.nodeId !== undefined) row.node_id = vm.nodeId;
  if (vm.cpu !== undefined) row.cpu = vm.cpu;
  if (vm.memoryMiB !== undefined) row.memory_mib = vm.memoryMiB;
  if (vm.firmware !== undefined) row.firmware = vm.firmware;
  if (vm.disks !== undefined) row.disks = toJson(vm.disks);
  if (vm.cdroms !== undefined) row.cdroms = toJson(vm.cdroms);
  if (vm.nics !== undefined) row.nics = toJson(vm.nics);
  if (vm.bootImageId !== undefined) row.boot_image_id = vm.bootImageId;
  if (vm.state !== undefined) row.state = vm.state;
  if (vm.error !== undefined) row.error = vm.error;
  if (vm.labels !== undefined) row.labels = toJson(vm.labels);
  return row;
}

/** Records the VM's MACs in vm_macs, whose primary key keeps each MAC on one VM only. */
async function writeMacs(trx: Knex.Transaction, vmId: string, nics: readonly VmNic[], replace = false): Promise<void> {
  if (replace) await trx('vm_macs').where({ vm_id: vmId }).delete();
  if (nics.length > 0) await trx('vm_macs').insert(nics.map((nic) => ({ mac: nic.mac, vm_id: vmId })));
}

export class KnexVmRepository implements VmRepository {
  constructor(private readonly knex: Knex) {}

  async create(input: NewVm): Promise<Vm> {
    const vm = validateNewVm(input);
    // The VM and its MACs in one transaction: a MAC another VM holds refuses the whole row.
    const row = await guarded(WHAT, () =>
      this.knex.transaction(async (trx) => {
        const [inserted] = await trx(TABLE)
          .insert({ id: vm.id ?? newId(), ...vmToColumns(vm) })
          .returning('*');
        await writeMacs(trx, (inserted as Row).id as string, vm.nics);
        return inserted as Row;
      }),
    );
    return rowToVm(row);
  }

  async get(id: string): Promise<Vm | undefined> {
    const row = await guarded(WHAT, () => this.knex(TABLE).where({ id }).first());
    return row ? rowToVm(row) : undefined;
  }

  async require(id: string): Promise<Vm> {
    const vm = await this.get(id);
    if (!vm) throw notFound(WHAT, id);
    return vm;
  }

  async getByName(name: string): Promise<Vm | undefined> {
    const row = await guarded(WHAT, () => this.knex(TABLE).where({ name }).first());
    return row ? rowToVm(row) : undefined;
  }

  async list(filter: VmFilter = {}): Promise<Vm[]> {
    const query = this.knex(TABLE).select('*');
    if (filter.nodeId !== undefined) {
      if (typeof filter.nodeId === 'string') query.where('node_id', filter.nodeId);
      else query.whereIn('node_id', [...filter.nodeId]);
    }
    if (filter.bootImageId !== undefined) query.where('boot_image_id', filter.bootImageId);
    if (filter.state !== undefined) {
      if (typeof filter.state === 'string') query.where('state', filter.state);
      else query.whereIn('state', [...filter.state]);
    }
    query.orderBy([{ column: 'created_at' }, { column: 'id' }]);
    const rows = await guarded(WHAT, () => applyPage(query, filter));
    return (rows as Row[]).map(rowToVm);
  }

  async update(id: string, patch: VmPatch, options: UpdateOptions = {}): Promise<Vm> {
    const valid = validateVmPatch(patch);
    const row = await updateVersioned(this.knex, {
      table: TABLE,
      id,
      what: WHAT,
      expectedVersion: options.expectedVersion,
      build: () => vmToColumns(valid),
      ...(valid.nics === undefined ? {} : { afterWrite: (trx) => writeMacs(trx, id, valid.nics ?? [], true) }),
    });
    return rowToVm(row);
  }

  async delete(id: string, options: UpdateOptions = {}): Promise<void> {
    await deleteVersioned(this.knex, { table: TABLE, id, what: WHAT, expectedVersion: options.expectedVersion });
  }
}
