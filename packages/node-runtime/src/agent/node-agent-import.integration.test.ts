/**
 * image.import on a node agent, everything real: the storage-local backend on real directories,
 * the images-cloud fetcher and QemuImgConverter (qemu-img, gzip, tar) against a real HTTP server
 * on loopback serving images made at set-up with qemu-img. What arrives is downloaded to
 * `<relPath>.orig`, converted to `relPath`, and the original removed unless kept.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type NodeMessage, PROTOCOL_VERSION, parseNodeMessage } from '@quantix/core';
import { HttpImageFetcher, QemuImgConverter } from '@quantix/images-cloud';
import { makeVmdkDescriptorNaming } from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentRequester } from '../__fixtures__/agent-requests.js';
import { localPools } from '../__fixtures__/local-pools.js';
import { NodeAgent } from './node-agent.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const OVF = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:id="f1" ovf:href="a-disk1.vmdk"/><File ovf:id="f2" ovf:href="a-disk2.vdi"/></References>
  <DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="4194304"/><Disk ovf:diskId="d2" ovf:fileRef="f2" ovf:capacity="2097152"/></DiskSection>
  <VirtualSystem ovf:id="appliance"><Name>Appliance</Name>
    <VirtualHardwareSection>
      <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>3</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>768</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;

describe('node agent image.import', () => {
  let root: string;
  let served: string;
  let poolDir: string;
  let server: Server;
  let baseUrl: string;
  let agent: NodeAgent;
  let diskSha: string;
  const sent: NodeMessage[] = [];
  const request = agentRequester(() => agent, sent);
  const importRequest = (imageId: string, file: string, relPath: string, extra: Record<string, unknown> = {}) => ({
    op: 'image.import',
    imageId,
    poolId: 'images',
    relPath,
    sourceUrl: `${baseUrl}/${file}`,
    checksum: { algorithm: 'sha256', value: sha256(readFileSync(join(served, file))) },
    checksumUrl: null,
    targetFormat: 'qcow2',
    ...extra,
  });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'quantix-agent-import-'));
    served = join(root, 'served');
    poolDir = join(root, 'pools', 'images');
    await mkdir(served, { recursive: true });
    const disk = Buffer.alloc(4 * MiB);
    disk.write('a disk of known content', 0);
    disk.fill(7, 2 * MiB, 3 * MiB);
    diskSha = sha256(disk);
    await writeFile(join(root, 'disk.raw'), disk);
    await exec('qemu-img', [
      'convert',
      '-q',
      '-f',
      'raw',
      '-O',
      'vmdk',
      join(root, 'disk.raw'),
      join(served, 'disk.vmdk'),
    ]);
    await exec('gzip', ['-k', join(served, 'disk.vmdk')]);
    const ova = join(root, 'ova');
    await mkdir(ova);
    await writeFile(join(ova, 'a.ovf'), OVF);
    await copyFile(join(served, 'disk.vmdk'), join(ova, 'a-disk1.vmdk'));
    await exec('qemu-img', ['create', '-q', '-f', 'vdi', join(ova, 'a-disk2.vdi'), '2M']);
    await exec('tar', ['-cf', join(served, 'appliance.ova'), '-C', ova, 'a.ovf', 'a-disk1.vmdk', 'a-disk2.vdi']);
    await makeVmdkDescriptorNaming(join(served, 'passwd.vmdk'), '/etc/passwd');

    server = createServer((req, res) => {
      const name = (req.url ?? '').slice(1);
      if (!/^[\w.-]+$/.test(name) || !existsSync(join(served, name))) return res.writeHead(404).end();
      const body = readFileSync(join(served, name));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    agent = new NodeAgent({
      nodeId: 'node-1',
      ...localPools(root),
      send: (message) => void sent.push(message),
      fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } })],
      converter: new QemuImgConverter(),
      progressIntervalMs: 0,
    });
    await agent.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [
        {
          id: 'images',
          name: 'images',
          type: 'local',
          config: { path: poolDir, create: true },
          contentTypes: ['images'],
          shared: false,
        },
      ],
    });
  });

  afterAll(async () => {
    await agent?.close();
    await new Promise((resolve) => server?.close(resolve));
    await rm(root, { recursive: true, force: true });
  });

  it('downloads a gzip-compressed VMDK, converts it to qcow2 with progress, and removes the original', async () => {
    const { response, emitted } = await request(importRequest('img-1', 'disk.vmdk.gz', 'cloud/disk.qcow2'));
    expect(response.error).toBeUndefined();
    const path = join(poolDir, 'cloud', 'disk.qcow2');
    expect(response.result).toMatchObject({
      format: 'qcow2',
      sourceFormat: 'vmdk',
      compression: 'gzip',
      virtualSizeBytes: 4 * MiB,
      checksum: { algorithm: 'sha256', value: sha256(readFileSync(path)) },
      ovf: null,
      extraDisks: [],
    });
    expect(readdirSync(join(poolDir, 'cloud'))).toEqual(['disk.qcow2']);
    await exec('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, join(root, 'disk.raw')]);
    const stages = emitted.flatMap((m) => (m.type === 'image.progress' && m.stage ? [[m.stage, m.percent]] : []));
    expect(stages).toContainEqual(['converting', 100]);
    expect(stages.map(([stage]) => stage)).toEqual(
      expect.arrayContaining(['decompressing', 'inspecting', 'verifying']),
    );
  });

  it('answers an import asked again (a control plane that restarted) from its result, and reports it in its hello', async () => {
    const first = join(poolDir, 'cloud', 'disk.qcow2');
    const { response } = await request(importRequest('img-1', 'disk.vmdk.gz', 'cloud/disk.qcow2'));
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({
      bytesTransferred: 0,
      sourceFormat: 'vmdk',
      checksum: { value: sha256(readFileSync(first)) },
    });
    expect(agent.hello({ hostname: 'hv', agentVersion: 'test' }).downloads).toContainEqual(
      expect.objectContaining({ imageId: 'img-1', relPath: 'cloud/disk.qcow2', state: 'done' }),
    );
  });

  it('imports an OVA: every disk converted, the OVF facts answered; keepOriginal keeps the download', async () => {
    const { response } = await request(
      importRequest('img-2', 'appliance.ova', 'cloud/appliance.qcow2', { keepOriginal: true }),
    );
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({
      sourceFormat: 'vmdk',
      virtualSizeBytes: 4 * MiB,
      ovf: { name: 'Appliance', cpuCount: 3, memoryMiB: 768, firmware: null },
      extraDisks: [{ relPath: 'cloud/appliance-disk2.qcow2', virtualSizeBytes: 2 * MiB }],
    });
    // A control plane that restarts adopts the finished import from the hello: as it parses it,
    // the OVF facts are still there (they became the image's requirements only if they are).
    const hello = parseNodeMessage(JSON.stringify(agent.hello({ hostname: 'hv', agentVersion: 'test' })));
    expect(hello.type === 'hello' && hello.downloads?.find((d) => d.imageId === 'img-2')?.result).toMatchObject({
      sourceFormat: 'vmdk',
      ovf: { name: 'Appliance', cpuCount: 3, memoryMiB: 768 },
      extraDisks: [{ relPath: 'cloud/appliance-disk2.qcow2' }],
    });
    expect(readdirSync(join(poolDir, 'cloud')).sort()).toEqual([
      'appliance-disk2.qcow2',
      'appliance.qcow2',
      'appliance.qcow2.orig',
      'disk.qcow2',
    ]);
    const converted = join(poolDir, 'cloud', 'appliance.qcow2');
    const raw = await exec('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', converted, join(root, 'back.raw')]);
    expect(raw.stderr).toBe('');
    expect(sha256(readFileSync(join(root, 'back.raw')))).toBe(diskSha);
  });

  it('removes an import with its original and what a download of it left (importOriginal); without it, the file alone', async () => {
    const cloud = join(poolDir, 'cloud');
    await writeFile(join(cloud, 'failed.qcow2.orig.partial'), 'half of it');
    await writeFile(join(cloud, 'failed.qcow2.orig.partial.meta'), '{}');
    await writeFile(join(cloud, 'plain.qcow2'), 'a download');
    await writeFile(join(cloud, 'plain.qcow2.orig'), 'not the download’s');
    const remove = (relPath: string, importOriginal?: boolean) =>
      request({ op: 'image.remove', poolId: 'images', relPath, ...(importOriginal ? { importOriginal } : {}) });
    // The OVA imported with keepOriginal above: its converted file and its original go together.
    expect((await remove('cloud/appliance.qcow2', true)).response.result).toEqual({ removed: true });
    // A failed import that never converted: its original's partial download goes.
    expect((await remove('cloud/failed.qcow2', true)).response.result).toEqual({ removed: false });
    // Not an import: a file named like an original is another's, and stays.
    expect((await remove('cloud/plain.qcow2')).response.result).toEqual({ removed: true });
    expect(readdirSync(cloud).sort()).toEqual(['appliance-disk2.qcow2', 'disk.qcow2', 'plain.qcow2.orig']);
  });

  it('refuses a VMDK descriptor naming /etc/passwd with IMAGE_UNSAFE and leaves nothing in the pool', async () => {
    const { response } = await request(importRequest('img-3', 'passwd.vmdk', 'unsafe/passwd.qcow2'));
    expect(response.error).toMatchObject({ code: 'IMAGE_UNSAFE' });
    expect(existsSync(join(poolDir, 'unsafe')) ? readdirSync(join(poolDir, 'unsafe')) : []).toEqual([]);
  });

  it('never runs qemu-img on a download its fetcher did not look at: a VMDK naming /etc/passwd is taken by its name', async () => {
    // A fetcher of the ImageFetcher contract that says nothing of what it fetched (no format, no
    // virtual size): the plugin contract allows one. qemu-img info of this descriptor would open
    // /etc/passwd as its extent and report the descriptor's 1 MiB.
    const http = new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } });
    const blindSent: NodeMessage[] = [];
    const blind = new NodeAgent({
      nodeId: 'node-2',
      ...localPools(root),
      send: (message) => void blindSent.push(message),
      fetchers: [
        {
          schemes: http.schemes,
          fetch: async (fetch) => {
            const {
              format: _format,
              virtualSizeBytes: _virtualSize,
              ...bytes
            } = await http.fetch({ ...fetch, inspect: false });
            return bytes;
          },
        },
      ],
      progressIntervalMs: 0,
    });
    try {
      const blindDir = join(root, 'pools', 'blind');
      await blind.handle({
        v: PROTOCOL_VERSION,
        type: 'pools.desired',
        generation: 1,
        pools: [
          {
            id: 'blind',
            name: 'blind',
            type: 'local',
            config: { path: blindDir, create: true },
            contentTypes: ['images'],
            shared: false,
          },
        ],
      });
      const file = readFileSync(join(served, 'passwd.vmdk'));
      const { response } = await agentRequester(
        () => blind,
        blindSent,
      )({
        op: 'image.download',
        imageId: 'img-blind',
        poolId: 'blind',
        relPath: 'cloud/passwd.vmdk',
        sourceUrl: `${baseUrl}/passwd.vmdk`,
        checksum: { algorithm: 'sha256', value: sha256(file) },
        checksumUrl: null,
      });
      expect(response.error).toBeUndefined();
      expect(response.result).toMatchObject({ sizeBytes: file.length, format: 'vmdk', virtualSizeBytes: null });
      expect(readFileSync(join(blindDir, 'cloud', 'passwd.vmdk'))).toEqual(file);
    } finally {
      await blind.close();
    }
  });

  it('refuses a file whose content is not what its name claims', async () => {
    await copyFile(join(root, 'disk.raw'), join(served, 'claims.vhdx'));
    const { response } = await request(importRequest('img-4', 'claims.vhdx', 'unsafe/claims.qcow2'));
    expect(response.error).toMatchObject({ code: 'IMAGE_FORMAT_MISMATCH' });
    expect(readdirSync(join(poolDir, 'unsafe'))).toEqual([]);
    // As a control plane asks when the user named no format (claimedFormat null): the name still claims.
    await copyFile(join(root, 'disk.raw'), join(served, 'named.vmdk'));
    const named = await request(importRequest('img-5', 'named.vmdk', 'unsafe/named.qcow2', { claimedFormat: null }));
    expect(named.response.error).toMatchObject({ code: 'IMAGE_FORMAT_MISMATCH' });
    expect(readdirSync(join(poolDir, 'unsafe'))).toEqual([]);
  });
});
