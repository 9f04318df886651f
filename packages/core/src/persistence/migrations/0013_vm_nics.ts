import type { Knex } from 'knex';

/**
 * A VM's NICs: where each plugs in and its MAC, generated once and kept, so the guest sees the
 * same interface (and keeps its DHCP lease) across restarts. Existing VMs get none, as they had.
 * The unique index holds every MAC once across all VMs, whichever replica made them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table vms add column nics jsonb not null default '[]'::jsonb`);
  await knex.raw(`
    create table vm_macs (
      mac text not null,
      vm_id text not null,
      constraint vm_macs_pkey primary key (mac),
      constraint vm_macs_vm_fk foreign key (vm_id) references vms (id) on delete cascade
    )`);
  await knex.raw('create index vm_macs_vm_idx on vm_macs (vm_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table vm_macs');
  await knex.raw('alter table vms drop column nics');
}
