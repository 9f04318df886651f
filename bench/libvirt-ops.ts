/**
 * bench/libvirt-ops — libvirt through the persistent SSH runner, beside virsh's own remote
 * transport, in one run, against the real libvirtd and the test sshd (scripts/services.sh).
 *   1. domain-state queries: LibvirtHypervisor.state() over one SshCommandRunner connection
 *      vs `virsh -c 'qemu+ssh://root@127.0.0.1:2222/system?keyfile=…&no_verify=1' domstate NAME`
 *      (a new SSH connection each time); 100 each, target ≥ 5× faster.
 *   2. create-to-running of a VM from a cloud image: VmProvisioner over SSH (overlay, NoCloud
 *      seed, define, start) vs the same steps by hand on the host (qemu-img, cloud-localds,
 *      virsh define/start/domstate, each a process).
 * QUANTIX_BENCH_QUICK=1: 10 queries each and one VM each (CI runs it so the bench never rots).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import {
  buildDomainXml,
  buildNoCloudSeed,
  LibvirtHypervisor,
  publicKeyFingerprint,
  SshCommandRunner,
  VmProvisioner,
} from '@quantix/node-runtime';

const run = promisify(execFile);
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const QUERIES = quick ? 10 : 100;
const VMS = quick ? 1 : 5;
const SSH_DIR = process.env.QUANTIX_TEST_SSH_DIR ?? '/var/lib/quantix-test/ssh';
const SSH_PORT = Number(process.env.QUANTIX_TEST_SSH_PORT ?? 2222);
const KEY = `${SSH_DIR}/id_ed25519`;
const VIRSH_SSH_URI = `qemu+ssh://root@127.0.0.1:${SSH_PORT}/system?keyfile=${KEY}&no_verify=1`;
const prefix = `qxb-${process.pid.toString(36)}`;

await run('bash', [join(import.meta.dirname, '..', 'scripts', 'services.sh'), 'libvirt', 'sshd'], { timeout: 600_000 });

const dir = await mkdtemp(join(tmpdir(), 'quantix-bench-libvirt-'));
const ssh = new SshCommandRunner({
  host: '127.0.0.1',
  port: SSH_PORT,
  username: 'root',
  privateKey: readFileSync(KEY),
  hostKey: { fingerprint: publicKeyFingerprint(readFileSync(`${SSH_DIR}/ssh_host_ed25519_key.pub`, 'utf8')) },
});
const hypervisor = new LibvirtHypervisor({ runner: ssh });
const virsh = (args: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...args]);

async function timed(op: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await op();
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

try {
  const virtType = await hypervisor.virtType();
  const provisioner = new VmProvisioner({ runner: ssh, hypervisor, virtType });
  // 1. State queries against one running domain.
  const name = `${prefix}-state`;
  const disk = join(dir, 'state.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  await hypervisor.define({
    xml: buildDomainXml({ name, memoryMiB: 64, vcpus: 1, virtType, disks: [{ path: disk }] }),
  });
  await hypervisor.start({ name });

  await hypervisor.state({ name }); // the connection is opened here, outside the timing
  const oursMs = await timed(async () => {
    for (let i = 0; i < QUERIES; i++)
      if ((await hypervisor.state({ name })) !== 'running') throw new Error('not running');
  });
  const peerMs = await timed(async () => {
    for (let i = 0; i < QUERIES; i++) {
      const { stdout } = await run('virsh', ['-c', VIRSH_SSH_URI, 'domstate', name]);
      if (stdout.trim() !== 'running') throw new Error(`virsh said ${stdout}`);
    }
  });
  const ratio = peerMs / oursMs;
  console.log(`bench/libvirt-ops (${virtType === 'kvm' ? 'KVM' : 'TCG'})${quick ? ' (quick mode)' : ''}`);
  console.log(
    `${QUERIES} domstate queries: persistent SSH runner ${(oursMs / QUERIES).toFixed(1)} ms/op   ` +
      `virsh qemu+ssh ${(peerMs / QUERIES).toFixed(1)} ms/op   ratio ${ratio.toFixed(2)}x faster ` +
      `(target ≥ 5x, ${ratio >= 5 ? 'ok' : 'UNDER TARGET'})`,
  );
  await hypervisor.destroy({ name });
  await hypervisor.undefine({ name, removeStorage: true });

  // 2. Create-to-running of a VM from a cloud image.
  const base = join(dir, 'base.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
  const ours: number[] = [];
  const byHand: number[] = [];
  for (let i = 0; i < VMS; i++) {
    const vm = `${prefix}-q${i}`;
    ours.push(
      await timed(() =>
        provisioner.createFromCloudImage({
          name: vm,
          memoryMiB: 64,
          baseImagePath: base,
          diskPath: join(dir, vm, 'disk0.qcow2'),
          seedPath: join(dir, vm, 'seed.iso'),
          cloudInit: { hostname: vm },
        }),
      ),
    );
    await provisioner.deleteVm({ name: vm });

    const manual = `${prefix}-h${i}`;
    const overlay = join(dir, `${manual}.qcow2`);
    const seed = join(dir, `${manual}-seed.iso`);
    const seedFiles = buildNoCloudSeed({ instanceId: manual, config: { hostname: manual } });
    const xmlFile = join(dir, `${manual}.xml`);
    byHand.push(
      await timed(async () => {
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, overlay]);
        await writeFile(join(dir, 'user-data'), seedFiles.userData);
        await writeFile(join(dir, 'meta-data'), seedFiles.metaData);
        await run('cloud-localds', [seed, join(dir, 'user-data'), join(dir, 'meta-data')]);
        await writeFile(
          xmlFile,
          buildDomainXml({
            name: manual,
            memoryMiB: 64,
            vcpus: 1,
            virtType,
            disks: [{ path: overlay }],
            cdroms: [{ path: seed }],
          }),
        );
        await virsh(['define', xmlFile]);
        await virsh(['start', manual]);
        const { stdout } = await virsh(['domstate', manual]);
        if (stdout.trim() !== 'running') throw new Error(`virsh said ${stdout}`);
      }),
    );
    await virsh(['destroy', manual]);
    await virsh(['undefine', manual]);
    await rm(overlay, { force: true });
    await rm(seed, { force: true });
  }
  const oursVm = median(ours);
  const handVm = median(byHand);
  console.log(
    `create-to-running (cloud image, median of ${VMS}): VmProvisioner over SSH ${oursVm.toFixed(0)} ms   ` +
      `by hand with virsh on the host ${handVm.toFixed(0)} ms   ratio ${(oursVm / handVm).toFixed(2)}x the manual time`,
  );
} finally {
  const local = new LibvirtHypervisor({ runner: ssh });
  for (const domain of await local.list().catch(() => [])) {
    if (!domain.name.startsWith(prefix)) continue;
    await local.destroy({ name: domain.name }).catch(() => undefined);
    await local.undefine({ name: domain.name }).catch(() => undefined);
  }
  await ssh.close();
  await rm(dir, { recursive: true, force: true });
}
