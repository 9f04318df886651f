import { dirname } from 'node:path';
import {
  type CommandRunner,
  type DomainInfo,
  ErrorCode,
  foreignFileReference,
  type Hypervisor,
  IMAGE_HEADER_BYTES,
  isQcow2Header,
  isQuantixError,
  type PluginContext,
  parseOrThrow,
  QuantixError,
  qemuImgInfoForeignFile,
  vmNameSchema,
} from '@quantix/core';
import { z } from 'zod';
import { NodeRuntimeErrorCode } from '../errors.js';
import { buildDomainXml, type DomainSpec, hostPathSchema, parseDomainXml } from '../libvirt/domain-xml.js';
import { ACTIVE_STATES } from '../libvirt/hypervisor.js';
import { buildNoCloudSeed, type CloudInitConfig, cloudInitSchema } from './cloud-init.js';

type Logger = PluginContext['logger'];

const GIB = 1024 ** 3;
/** The volume id cloud-init's NoCloud datasource looks for. */
export const NOCLOUD_VOLUME_ID = 'cidata';

const macSchema = z
  .string()
  .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
  .optional();
const networkSchema = z.array(
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('network'), network: z.string().min(1).max(255), mac: macSchema }).strict(),
    z.object({ kind: z.literal('bridge'), bridge: z.string().min(1).max(15), mac: macSchema }).strict(),
    z.object({ kind: z.literal('user') }).strict(),
  ]),
);

const commonFields = {
  name: vmNameSchema,
  /** Quantix's id of the VM, kept in the domain's metadata (and the cloud-init instance id). */
  vmId: z.string().min(1).max(128).optional(),
  vcpus: z.number().int().min(1).max(1024).default(1),
  memoryMiB: z
    .number()
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .default(1024),
  firmware: z.enum(['bios', 'uefi']).default('bios'),
  /** The guest OS as libosinfo names it, recorded in the domain's libosinfo metadata (domain-xml.ts checks it). */
  osinfoId: z.string().max(256).optional(),
  /** The VM's disk on the node (a qcow2 file made here); missing directories above it are made. */
  diskPath: hostPathSchema,
  networks: networkSchema.max(16).default([]),
  /** Start the domain once it is defined. Default true. */
  start: z.boolean().default(true),
};

export const cloudVmSchema = z
  .object({
    ...commonFields,
    /** The ready base image (qcow2 or raw). Only read: the VM writes to an overlay on it. */
    baseImagePath: hostPathSchema,
    /** Where the NoCloud seed ISO is written. */
    seedPath: hostPathSchema,
    /** Virtual size of the VM's disk; default the base image's. Never smaller than that. */
    diskSizeGiB: z.number().int().min(1).max(65_536).optional(),
    cloudInit: cloudInitSchema,
  })
  .strict();

export const isoVmSchema = z
  .object({
    ...commonFields,
    /** The installer ISO, attached read-only as the first boot device. */
    isoPath: hostPathSchema,
    diskSizeGiB: z.number().int().min(1).max(65_536),
  })
  .strict();

export type CloudVmOptions = z.input<typeof cloudVmSchema> & { cloudInit: CloudInitConfig };
export type IsoVmOptions = z.input<typeof isoVmSchema>;

export interface CreatedVm {
  domain: DomainInfo;
  /** Files made for this VM (removed again by deleteVm), and the directories made for them. */
  ownedFiles: string[];
  ownedDirectories: string[];
}

export interface VmProvisionerOptions {
  /** Where qemu-img, genisoimage or xorriso, mkdir and rm run: the same host as the hypervisor's virsh. */
  runner: CommandRunner;
  hypervisor: Hypervisor;
  /** 'kvm' or 'qemu' (TCG); 'auto' asks the hypervisor when it can tell (LibvirtHypervisor), else kvm. */
  virtType?: 'kvm' | 'qemu' | 'auto';
  /** Bound on qemu-img and ISO-making calls. Default 120 s. */
  timeoutMs?: number;
  logger?: Logger;
}

/**
 * Creates VMs from cloud images and ISOs on one host, and deletes them again. Every file is made
 * through the CommandRunner, so the host may be this one or a remote one. What a VM owns is
 * written into its domain XML (Quantix metadata), so deleting it removes exactly those files —
 * the overlay, the seed, the empty disk — and never the base image or the ISO, even after a
 * restart of whoever created it. A creation that fails half-way removes what it had made.
 */
export class VmProvisioner {
  private readonly runner: CommandRunner;
  private readonly hypervisor: Hypervisor;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private virtType: Promise<'kvm' | 'qemu'> | null;

  constructor(options: VmProvisionerOptions) {
    this.runner = options.runner;
    this.hypervisor = options.hypervisor;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.logger = options.logger;
    const wanted = options.virtType ?? 'auto';
    this.virtType = wanted === 'auto' ? null : Promise.resolve(wanted);
  }

  /**
   * A VM from a cloud image: a qcow2 overlay backed by the base image, a NoCloud seed ISO
   * (hostname, user, SSH keys) on a CD-ROM, defined and (by default) started.
   */
  async createFromCloudImage(input: CloudVmOptions): Promise<CreatedVm> {
    const options = parseOrThrow(cloudVmSchema, input, 'cloud VM');
    const disk = options.diskPath;
    const seed = options.seedPath;
    // Independent checks, run side by side on the connection's channels with the files' places
    // made ready (their directories are removed again if a check fails).
    const [checked, dirs] = await this.checkedAndPrepared(
      Promise.all([this.refuseExistingDomain(options.name), this.imageInfo(options.baseImagePath)]),
      [disk, seed],
    );
    return this.withRollback(
      dirs,
      async (made) => {
        const [, base] = checked();
        const sizeBytes = options.diskSizeGiB === undefined ? base.virtualSize : options.diskSizeGiB * GIB;
        if (sizeBytes < base.virtualSize) {
          throw new QuantixError(
            ErrorCode.INVALID_INPUT,
            `The disk of '${options.name}' (${options.diskSizeGiB} GiB) would be smaller than its base image (${base.virtualSize} bytes)`,
            { details: { diskSizeGiB: options.diskSizeGiB, baseVirtualSize: base.virtualSize } },
          );
        }
        const files = buildNoCloudSeed({ instanceId: options.vmId ?? options.name, config: options.cloudInit });
        // The overlay and the seed do not depend on each other: made side by side. Both are
        // waited for, so a failure of one never leaves the other half-made outside `made`.
        const [overlay, seeded] = await Promise.allSettled([
          this.cmd([
            'qemu-img',
            'create',
            '-q',
            '-f',
            'qcow2',
            '-F',
            base.format,
            '-b',
            options.baseImagePath,
            disk,
            String(sizeBytes),
          ]),
          this.makeSeedIso({ seed, ...files }),
        ]);
        if (overlay.status === 'fulfilled') made.push(disk);
        if (seeded.status === 'fulfilled') made.push(seed);
        if (overlay.status === 'rejected') throw overlay.reason;
        if (seeded.status === 'rejected') throw seeded.reason;
        return {
          name: options.name,
          memoryMiB: options.memoryMiB,
          vcpus: options.vcpus,
          firmware: options.firmware,
          disks: [{ path: disk, format: 'qcow2' }],
          // The seed, and an empty drive for an ISO put in later (drivers, a rescue system): the
          // seed stays where cloud-init finds it on every boot.
          cdroms: [{ path: seed }, { path: null }],
          networks: options.networks,
          bootFrom: 'disk',
          // A display for the web UI's console: VNC on the node's loopback only, relayed by the node.
          graphics: 'vnc',
          ...(options.osinfoId ? { osinfoId: options.osinfoId } : {}),
          metadata: { vmId: options.vmId },
        };
      },
      options.start,
    );
  }

  /** A VM from an installer ISO: an empty qcow2 disk and the ISO as the first boot device. */
  async createFromIso(input: IsoVmOptions): Promise<CreatedVm> {
    const options = parseOrThrow(isoVmSchema, input, 'ISO VM');
    const disk = options.diskPath;
    const [checked, dirs] = await this.checkedAndPrepared(
      Promise.all([this.refuseExistingDomain(options.name), this.mustExist(options.isoPath, 'ISO')]),
      [disk],
    );
    return this.withRollback(
      dirs,
      async (made) => {
        checked();
        await this.cmd(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, String(options.diskSizeGiB * GIB)]);
        made.push(disk);
        return {
          name: options.name,
          memoryMiB: options.memoryMiB,
          vcpus: options.vcpus,
          firmware: options.firmware,
          disks: [{ path: disk, format: 'qcow2' }],
          cdroms: [{ path: options.isoPath }],
          networks: options.networks,
          bootFrom: 'cdrom',
          // A display for the web UI's console: VNC on the node's loopback only, relayed by the node.
          graphics: 'vnc',
          ...(options.osinfoId ? { osinfoId: options.osinfoId } : {}),
          metadata: { vmId: options.vmId },
        };
      },
      options.start,
    );
  }

  /**
   * Stops the domain if it runs, undefines it and removes the files it owns (and the directories
   * made for them, when now empty). Base images and ISOs are never touched.
   */
  async deleteVm({ name }: { name: string }): Promise<{ removedFiles: string[] }> {
    parseOrThrow(vmNameSchema, name, 'VM name');
    const state = await this.hypervisor.state({ name });
    if (ACTIVE_STATES.includes(state)) {
      try {
        await this.hypervisor.destroy({ name });
      } catch (error) {
        // It stopped by itself in between: that is what was wanted.
        if (!isQuantixError(error, NodeRuntimeErrorCode.INVALID_STATE)) throw error;
      }
    }
    const info = parseDomainXml(await this.hypervisor.dumpXml({ name }));
    await this.hypervisor.undefine({ name, removeStorage: true });
    await this.removeDirectories(info.ownedDirectories);
    return { removedFiles: info.ownedFiles };
  }

  /**
   * Empties the CD-ROM drives of the domain that hold one of `paths` (an installer's ISO, once
   * the OS is on the disk), live when it runs and in its definition. The drives stay: the guest
   * keeps its devices, and boots from its disk. The drives emptied; none when none held them.
   */
  async ejectCdroms({ name, paths }: { name: string; paths: readonly string[] }): Promise<{ ejected: string[] }> {
    parseOrThrow(vmNameSchema, name, 'VM name');
    const held = new Set(paths);
    const { disks } = parseDomainXml(await this.hypervisor.dumpXml({ name }));
    const drives = disks.filter((disk) => disk.device === 'cdrom' && disk.path !== null && held.has(disk.path));
    for (const drive of drives) await this.hypervisor.ejectMedia({ name, target: drive.target });
    return { ejected: drives.map((drive) => drive.target) };
  }

  /**
   * Puts the ISO at `path` into the domain's first empty CD-ROM drive (drivers, a rescue system,
   * the installer again), live when it runs and in its definition. A drive that holds it already
   * is the answer as it is. INVALID_STATE when no drive is empty, naming what each holds.
   */
  async insertCdrom({ name, path }: { name: string; path: string }): Promise<{ target: string }> {
    parseOrThrow(vmNameSchema, name, 'VM name');
    const drives = parseDomainXml(await this.hypervisor.dumpXml({ name })).disks.filter(
      (disk) => disk.device === 'cdrom',
    );
    const holding = drives.find((drive) => drive.path === path);
    if (holding) return { target: holding.target };
    const empty = drives.find((drive) => drive.path === null);
    if (!empty) {
      const held = drives.map((drive) => `${drive.target} holds ${drive.path}`).join(', ');
      throw new QuantixError(
        NodeRuntimeErrorCode.INVALID_STATE,
        drives.length === 0 ? `VM '${name}' has no CD-ROM drive` : `VM '${name}' has no empty CD-ROM drive: ${held}`,
        { details: { name, drives: drives.map(({ target, path: held }) => ({ target, path: held })) } },
      );
    }
    await this.hypervisor.insertMedia({ name, target: empty.target, sourcePath: path });
    return { target: empty.target };
  }

  /**
   * `checks` side by side with prepareFiles(`files`): what the checks found (called inside
   * withRollback, so that a failed check removes the directories made: it throws the check's
   * error), and the directories made. A file that exists already is thrown here, before anything
   * is made — unless a check failed too, whose error is the one thrown.
   */
  private async checkedAndPrepared<T>(checks: Promise<T>, files: string[]): Promise<[() => T, string[]]> {
    const [checked, prepared] = await Promise.allSettled([checks, this.prepareFiles(files)]);
    if (prepared.status === 'rejected') throw checked.status === 'rejected' ? checked.reason : prepared.reason;
    const found = () => {
      if (checked.status === 'rejected') throw checked.reason;
      return checked.value;
    };
    return [found, prepared.value];
  }

  /** `make` with what it made (files, `dirs`, the domain) removed again if it or the start fails. */
  private async withRollback(
    dirs: string[],
    make: (made: string[]) => Promise<DomainSpec>,
    start: boolean,
  ): Promise<CreatedVm> {
    const made: string[] = [];
    let defined: string | null = null;
    try {
      const spec = await make(made);
      const xml = buildDomainXml({
        ...spec,
        virtType: await this.resolveVirtType(),
        metadata: { ...spec.metadata, ownedFiles: made, ownedDirectories: dirs },
      });
      let domain = await this.hypervisor.define({ xml });
      defined = domain.name;
      if (start) {
        await this.hypervisor.start({ name: domain.name });
        domain = { ...domain, state: await this.hypervisor.state({ name: domain.name }) };
      }
      this.logger?.info({ name: domain.name, files: made }, 'VM created');
      return { domain, ownedFiles: made, ownedDirectories: dirs };
    } catch (error) {
      await this.rollback({ defined, made, dirs }).catch((cleanup) =>
        this.logger?.error({ err: String(cleanup), made }, 'could not remove what a failed VM creation had made'),
      );
      throw error;
    }
  }

  private async rollback({ defined, made, dirs }: { defined: string | null; made: string[]; dirs: string[] }) {
    if (defined) {
      await this.hypervisor.destroy({ name: defined }).catch(() => undefined);
      await this.hypervisor.undefine({ name: defined }).catch(() => undefined);
    }
    if (made.length > 0) await this.cmd(['rm', '-f', '--', ...made]);
    await this.removeDirectories(dirs);
  }

  /**
   * Makes the places of the files a VM will own ready: refuses with ALREADY_EXISTS if one of them
   * exists (nothing is overwritten), else makes the missing directories above them and returns
   * those, deepest first. One round trip: a fixed script, the paths its arguments (they have no
   * line breaks: hostPathSchema), prints the first file that exists, or which of the directories
   * and their ancestors are missing before it makes them.
   */
  private async prepareFiles(files: string[]): Promise<string[]> {
    const candidates = new Set<string>();
    for (const dir of new Set(files.map((file) => dirname(file)))) {
      for (let current = dir; current !== dirname(current); current = dirname(current)) candidates.add(current);
    }
    const script = [
      'files=$1; shift',
      'i=0',
      'for path; do',
      '  i=$((i + 1)); [ "$i" -le "$files" ] || break',
      `  if [ -e "$path" ]; then printf 'exists:%s\\n' "$path"; exit 0; fi`,
      'done',
      'shift "$files"',
      '[ "$#" -gt 0 ] || exit 0',
      `for dir; do [ -e "$dir" ] || printf '%s\\n' "$dir"; done`,
      // mkdir -p of every candidate is mkdir -p of the wanted ones: the rest are their ancestors.
      'mkdir -p -- "$@"',
    ].join('\n');
    const listed = await this.cmd(['sh', '-c', script, 'sh', String(files.length), ...files, ...candidates]);
    const existing = /^exists:(.*)$/m.exec(listed)?.[1];
    if (existing !== undefined) {
      throw new QuantixError(
        ErrorCode.ALREADY_EXISTS,
        `${existing} already exists on ${this.runner.target}; it is not overwritten`,
        { details: { path: existing, target: this.runner.target } },
      );
    }
    const missing = new Set(listed.split('\n').filter((line) => candidates.has(line)));
    return [...missing].sort((a, b) => b.length - a.length);
  }

  /** Removes directories made for a VM, deepest first, each only while it is empty. */
  private async removeDirectories(dirs: string[]): Promise<void> {
    for (const dir of dirs) await this.cmd(['rmdir', '--ignore-fail-on-non-empty', '--', dir]);
  }

  /**
   * A NoCloud seed: user-data and meta-data on an ISO 9660 volume labelled `cidata`, made in one
   * command (one round trip to the host). The files are staged beside the seed — same host, same
   * file system — and the staging directory goes whatever happens. The script is fixed: the
   * paths, sizes and label are its positional arguments, and both files arrive on its input.
   */
  private async makeSeedIso(options: { seed: string; userData: string; metaData: string }) {
    const script = [
      'set -e',
      'staging=$(mktemp -d -- "$1.staging-XXXXXXXX")',
      `trap 'rm -rf -- "$staging"' EXIT`,
      'head -c "$2" > "$staging/user-data"',
      'cat > "$staging/meta-data"',
      // genisoimage (what cloud-localds uses) when the host has it: it starts in ~8 ms where
      // xorriso takes ~100 ms; both read the same mkisofs options.
      'if command -v genisoimage >/dev/null 2>&1; then mkiso() { genisoimage "$@"; }; else mkiso() { xorriso -as mkisofs "$@"; }; fi',
      'mkiso -quiet -output "$1" -volid "$3" -joliet -rock "$staging/user-data" "$staging/meta-data" </dev/null',
    ].join('\n');
    await this.cmd(
      ['sh', '-c', script, 'sh', options.seed, String(Buffer.byteLength(options.userData)), NOCLOUD_VOLUME_ID],
      options.userData + options.metaData,
    );
  }

  private async imageInfo(path: string): Promise<{ format: 'qcow2' | 'raw'; virtualSize: number }> {
    // The header first, read side by side with the existence check (whose NOT_FOUND wins over a
    // failed read of a missing file): qemu-img opens the files an image names (a VMDK descriptor's
    // extents, a qcow2's data file), so one that names any is refused before qemu-img sees it.
    const [found, head] = await Promise.allSettled([this.mustExist(path, 'base image'), this.readHead(path)]);
    if (found.status === 'rejected') throw found.reason;
    if (head.status === 'rejected') throw head.reason;
    const foreign = foreignFileReference(head.value);
    if (foreign) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `The base image ${path} ${foreign.message}; a VM's base image must stand alone`,
        { details: { path, reason: foreign.reason, ...foreign.details } },
      );
    }
    // -U: the base image may be open in running VMs; reading its header is safe. A qcow2 (as its
    // header says) is checked side by side with the info: one round trip after the header, not two.
    const [described, checked] = await Promise.allSettled([
      this.cmd(['qemu-img', 'info', '-U', '--output=json', '--', path]),
      isQcow2Header(head.value) ? this.checkQcow2(path) : Promise.resolve(),
    ]);
    if (described.status === 'rejected') throw described.reason;
    const out = described.value;
    const info = JSON.parse(out) as { format?: string; 'virtual-size'?: number } & Record<string, unknown>;
    if ((info.format !== 'qcow2' && info.format !== 'raw') || typeof info['virtual-size'] !== 'number') {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `The base image ${path} is ${info.format ?? 'of no known format'}; a cloud VM needs a qcow2 or raw image`,
        { details: { path, format: info.format ?? null } },
      );
    }
    // A base image is any file of a pool, scanned in as it was found. One that names another file
    // (a backing file, an external data file) would give the VM that file as its disk: /etc/shadow,
    // another VM's disk. The header said none; qemu-img's reading is checked too (the file may
    // have changed since its header was read).
    const other = qemuImgInfoForeignFile(info, path);
    if (other) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `The base image ${path} ${other.message}; a VM's base image must stand alone`,
        { details: { path, reason: other.reason, ...other.details } },
      );
    }
    if (info.format === 'qcow2') {
      if (checked.status === 'rejected') throw checked.reason;
      if (!isQcow2Header(head.value)) await this.checkQcow2(path); // the file changed since its header was read
    }
    return { format: info.format, virtualSize: info['virtual-size'] };
  }

  /**
   * `qemu-img check`: a qcow2 whose clusters lie past its end (a file still being copied into the
   * pool, or cut short) or whose metadata is damaged would give the VM a disk that fails under it.
   * Leaked clusters (exit 3) only waste space.
   */
  private async checkQcow2(path: string): Promise<void> {
    const result = await this.runner.run({
      argv: ['qemu-img', 'check', '-U', '--output=json', '--', path],
      allowNonZeroExit: true,
      timeoutMs: this.timeoutMs,
    });
    if (result.exitCode === 0 || result.exitCode === 3) return;
    let report: { corruptions?: number; 'check-errors'?: number; 'image-end-offset'?: number } = {};
    try {
      report = JSON.parse(result.stdout) as typeof report;
    } catch {
      // No report: qemu-img could not check it at all; its words are in stderr.
    }
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `The base image ${path} is damaged or incomplete (qemu-img check: ${report.corruptions ?? 0} corruptions, ` +
        `${report['check-errors'] ?? 0} errors${result.exitCode === 1 ? `: ${result.stderr.trim().split('\n')[0]}` : ''}); ` +
        'a file still being copied into its pool reads so until the copy ends',
      {
        details: {
          path,
          reason: 'damaged',
          corruptions: report.corruptions ?? null,
          checkErrors: report['check-errors'] ?? null,
        },
      },
    );
  }

  private async refuseExistingDomain(name: string): Promise<void> {
    try {
      const state = await this.hypervisor.state({ name });
      throw new QuantixError(ErrorCode.ALREADY_EXISTS, `A domain named '${name}' already exists (${state})`, {
        details: { name, state },
      });
    } catch (error) {
      if (!isQuantixError(error, ErrorCode.NOT_FOUND)) throw error;
    }
  }

  private async exists(path: string): Promise<boolean> {
    const result = await this.runner.run({
      argv: ['test', '-e', path],
      allowNonZeroExit: true,
      timeoutMs: this.timeoutMs,
    });
    return result.exitCode === 0;
  }

  private async mustExist(path: string, what: string): Promise<void> {
    if (!(await this.exists(path))) {
      throw new QuantixError(ErrorCode.NOT_FOUND, `The ${what} ${path} does not exist on ${this.runner.target}`, {
        details: { path, target: this.runner.target },
      });
    }
  }

  private async resolveVirtType(): Promise<'kvm' | 'qemu'> {
    if (!this.virtType) {
      const probe = this.hypervisor as Hypervisor & { virtType?: () => Promise<'kvm' | 'qemu'> };
      const asked = typeof probe.virtType === 'function' ? probe.virtType() : Promise.resolve<'kvm' | 'qemu'>('kvm');
      // A failed probe is asked again next time, not remembered.
      asked.catch(() => {
        if (this.virtType === asked) this.virtType = null;
      });
      this.virtType = asked;
    }
    return this.virtType;
  }

  /** The first IMAGE_HEADER_BYTES of a file where the runner runs, as bytes. */
  private async readHead(path: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    await this.runner.run({
      argv: ['head', '-c', String(IMAGE_HEADER_BYTES), '--', path],
      timeoutMs: this.timeoutMs,
      maxOutputBytes: IMAGE_HEADER_BYTES,
      onOutput: (stream, chunk) => {
        if (stream === 'stdout') chunks.push(chunk);
      },
    });
    return Buffer.concat(chunks);
  }

  private async cmd(argv: string[], stdin?: string): Promise<string> {
    return (await this.runner.run({ argv, stdin, timeoutMs: this.timeoutMs })).stdout;
  }
}
