import {
  CommandRunnerToken,
  createQuantix,
  definePlugin,
  ErrorCode,
  HypervisorToken,
  ImageCatalogToken,
  ImageFetcherToken,
  StorageBackendToken,
} from '@quantix/core';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { createImagesIsoPlugin } from '@quantix/images-iso';
import { storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireServices, TEST_SSH, TEST_SSH_KEY, testSshRunnerOptions } from './__fixtures__/services.js';
import { createNodeRuntimePlugin, VmProvisionerToken } from './plugin.js';
import { VmProvisioner } from './vm/provisioner.js';

// The plugin in a real Quantix instance (embedded PGlite), reaching real libvirtd locally and
// through the real test sshd.

describe('node-runtime plugin', () => {
  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
  });
  const closing: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const q of closing) await q.close();
  });

  it('provides an SSH runner, the libvirt hypervisor over it and the VM provisioner, from its config', async () => {
    const fingerprint = testSshRunnerOptions().hostKey.fingerprint as string;
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [
        createNodeRuntimePlugin({
          runner: {
            kind: 'ssh',
            host: TEST_SSH.host,
            port: TEST_SSH.port,
            privateKeyPath: TEST_SSH_KEY,
            hostFingerprint: fingerprint,
          },
        }),
      ],
    });
    closing.push(quantix);
    expect(quantix.get(CommandRunnerToken).target).toBe(`ssh://root@127.0.0.1:${TEST_SSH.port}`);
    expect(Array.isArray(await quantix.get(HypervisorToken).list())).toBe(true);
    expect(quantix.get(VmProvisionerToken)).toBeInstanceOf(VmProvisioner);
  });

  it('runs locally when configured so, also from createQuantix config', async () => {
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createNodeRuntimePlugin()],
      config: { nodeRuntime: { runner: { kind: 'local' }, libvirt: { uri: 'qemu:///system' } } },
    });
    closing.push(quantix);
    expect(quantix.get(CommandRunnerToken).target).toBe('local');
    expect(Array.isArray(await quantix.get(HypervisorToken).list())).toBe(true);
  });

  it('builds a node with the kernel: no database, every plugin a node uses, and a plugin that needs the hypervisor', async () => {
    const domains: number[] = [];
    const agent = definePlugin({
      name: 'agent',
      apiVersion: '^1.1.0',
      needs: [HypervisorToken, StorageBackendToken],
      register: (ctx) => ctx.onReady(async () => void domains.push((await ctx.get(HypervisorToken).list()).length)),
    });
    const node = await createQuantix({
      database: false,
      plugins: [
        storageLocalPlugin,
        createImagesCloudPlugin(),
        createImagesIsoPlugin({ osinfo: false }),
        createNodeRuntimePlugin({ runner: { kind: 'local' } }),
        agent,
      ],
    });
    closing.push(node);
    expect(domains).toHaveLength(1);
    expect(node.getAll(StorageBackendToken).map((b) => b.type)).toEqual(['local']);
    expect(node.getAll(ImageFetcherToken).flatMap((f) => f.schemes)).toEqual(['http', 'https']);
    expect(node.getAll(ImageCatalogToken).length).toBe(2);
    expect(node.get(VmProvisionerToken)).toBeInstanceOf(VmProvisioner);
  });

  it('fails start-up on a bad configuration, naming what is wrong', async () => {
    await expect(
      createQuantix({
        database: { client: 'pglite' },
        plugins: [createNodeRuntimePlugin({ runner: { kind: 'ssh', host: 'h' } as never })],
      }),
    ).rejects.toMatchObject({ message: expect.stringContaining('privateKeyPath') });
    await expect(
      createQuantix({
        database: { client: 'pglite' },
        plugins: [createNodeRuntimePlugin({ runner: { kind: 'telnet' } as never })],
      }),
    ).rejects.toMatchObject({
      code: expect.stringMatching(new RegExp(`${ErrorCode.INVALID_INPUT}|${ErrorCode.PLUGIN_INVALID}`)),
    });
  });
});
