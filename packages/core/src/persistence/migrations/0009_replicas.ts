import type { Knex } from 'knex';

/**
 * Control-plane replicas, who holds each node's connection, and requests carried between them. A replica's row and its node
 * leases expire unless it renews them; a node held by a replica whose leases ran out is free
 * for any other. (0008 is the constraint-naming migration.)
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table replicas (
      id text primary key,
      url text,
      version text not null,
      started_at timestamptz not null default now(),
      heartbeat_at timestamptz not null default now(),
      expires_at timestamptz not null
    )`);
  await knex.raw(`
    create table node_leases (
      node_id text primary key constraint node_leases_node_fk references nodes(id) on delete cascade,
      replica_id text not null constraint node_leases_replica_fk references replicas(id) on delete cascade,
      acquired_at timestamptz not null default now(),
      expires_at timestamptz not null
    )`);
  await knex.raw('create index node_leases_replica on node_leases (replica_id)');
  // A request for a node held by another replica, carried there and its answer back.
  await knex.raw(`
    create table node_requests (
      id text primary key,
      node_id text not null,
      from_replica text not null,
      to_replica text not null,
      request jsonb not null,
      state text not null default 'pending' constraint node_requests_state check (state in ('pending', 'taken', 'done')),
      result jsonb,
      error jsonb,
      created_at timestamptz not null default now(),
      deadline timestamptz not null
    )`);
  await knex.raw('create index node_requests_deadline on node_requests (deadline)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table node_requests');
  await knex.raw('drop table node_leases');
  await knex.raw('drop table replicas');
}
