/**
 * QemuImgInspector with real qemu-img (qemu-utils) on images it makes. Behind a runner other
 * than this machine's LocalCommandRunner (a node's SSH runner), the file cannot be read before
 * qemu-img runs, so qemu-img's answer is all there is to refuse an image by: here the runner is a
 * plain object of the CommandRunner contract that runs commands on this machine, standing for one
 * elsewhere (what it changes is only that the inspector cannot read the header).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CommandRunner, LocalCommandRunner } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuImgInspector } from './inspect.js';

const exec = promisify(execFile);

describe('QemuImgInspector behind a runner of another machine', () => {
  let dir: string;
  const local = new LocalCommandRunner();
  const elsewhere: CommandRunner = {
    target: 'ssh://node@elsewhere',
    run: (options) => local.run(options),
    close: async () => {},
  };
  const inspector = new QemuImgInspector({ runner: elsewhere });
  const path = (name: string) => join(dir, name);
  const create = (name: string, ...options: string[]) =>
    exec('qemu-img', ['create', '-q', '-f', 'qcow2', ...options, path(name), '1M']);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-inspect-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a qcow2 that stands alone', async () => {
    await create('alone.qcow2');
    expect(await inspector.inspect({ path: path('alone.qcow2') })).toMatchObject({
      format: 'qcow2',
      virtualSizeBytes: 1024 * 1024,
    });
  });

  it('refuses, from what qemu-img says, a qcow2 naming a backing file or keeping its data in another file', async () => {
    await exec('truncate', ['-s', '1M', path('base.raw')]);
    await create('backed.qcow2', '-F', 'raw', '-b', path('base.raw'));
    await expect(inspector.inspect({ path: path('backed.qcow2') })).rejects.toMatchObject({
      code: 'IMAGE_INVALID',
      details: { reason: 'backing-file', file: path('base.raw'), retryable: false },
    });
    await create('data.qcow2', '-o', `data_file=${path('data.bin')},data_file_raw=on`);
    await expect(inspector.inspect({ path: path('data.qcow2') })).rejects.toMatchObject({
      code: 'IMAGE_INVALID',
      details: { reason: 'data-file', file: path('data.bin'), retryable: false },
    });
  });
});
