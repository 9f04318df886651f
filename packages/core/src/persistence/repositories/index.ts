import type { Knex } from 'knex';
import type { Repositories } from '../../contracts/repositories.js';
import { KnexImageRepository } from './images.js';
import { KnexNodeRepository } from './nodes.js';
import { KnexPoolRepository } from './pools.js';
import { KnexVmRepository } from './vms.js';

export { KnexImageRepository, KnexNodeRepository, KnexPoolRepository, KnexVmRepository };

export function createRepositories(knex: Knex): Repositories {
  return {
    images: new KnexImageRepository(knex),
    pools: new KnexPoolRepository(knex),
    nodes: new KnexNodeRepository(knex),
    vms: new KnexVmRepository(knex),
  };
}
