import type {
  HostNetwork,
  Image,
  ImageKind,
  NicAttachment,
  PoolNodeState,
  Repositories,
  StoragePool,
} from '@quantix/core';
import { ErrorCode, isDataDisc, QuantixError } from '@quantix/core';
import { ControlPlaneErrorCode } from '../errors.js';
import { pathOnNode } from '../images/available.js';

const GIB = 1024 ** 3;

export interface VmImageCheck {
  image: Image;
  pool: StoragePool;
  state: PoolNodeState;
  /** Absolute path of the image file on the target node. */
  path: string;
}

/**
 * Everything that must hold before a hypervisor is touched to boot a VM from an image, checked
 * in order, each failure with its own code and a message a person can act on. `fileExists`
 * asks the target node (the control plane cannot see the node's disks), given the file's path
 * there and its place in its pool; a file found missing
 * marks the image `missing`, so the next listing tells the truth. `kind`, when only one kind of
 * image will do, is checked first (INVALID_INPUT, `why` ending the message): an image of another
 * kind would never do, ready or not, and its node is not asked about its file.
 */
export async function checkVmImage(options: {
  repositories: Repositories;
  imageId: string;
  nodeId: string;
  fileExists: (path: string, location: { poolId: string; relPath: string }) => Promise<boolean>;
  kind?: { is: ImageKind; why: string };
}): Promise<VmImageCheck> {
  const { repositories, imageId, nodeId, fileExists, kind } = options;
  const fail = (code: ErrorCode, message: string, details: Record<string, unknown> = {}) =>
    new QuantixError(code, message, { details: { imageId, nodeId, ...details } });

  const image = await repositories.images.get(imageId);
  if (!image)
    throw fail(ErrorCode.IMAGE_NOT_FOUND, `Image ${imageId} does not exist; pick one from the available images`);
  if (kind && image.kind !== kind.is) {
    throw fail(ErrorCode.INVALID_INPUT, `Image ${image.name} is a ${image.kind} image; ${kind.why}`, {
      kind: image.kind,
    });
  }
  if (image.phase !== 'ready') {
    const detail =
      image.phase === 'error'
        ? `its download failed: ${image.error?.message ?? 'unknown reason'}; retry the download`
        : image.phase === 'missing'
          ? 'its file has disappeared from the pool; rescan or download it again'
          : image.progress?.percent != null
            ? `it is ${image.phase} (${image.progress.percent.toFixed(0)}%); wait until it is ready`
            : `it is ${image.phase}; wait until it is ready`;
    throw fail(ErrorCode.IMAGE_NOT_READY, `Image ${image.name} is not ready: ${detail}`, { phase: image.phase });
  }
  if (!image.location) {
    throw fail(ErrorCode.IMAGE_NO_LOCATION, `Image ${image.name} has no location in a pool, so no node can read it`);
  }
  const pool = await repositories.pools.get(image.location.poolId);
  const state = await repositories.pools.getNodeState(image.location.poolId, nodeId);
  const poolName = pool?.name ?? image.location.poolId;
  if (!pool?.nodeIds.includes(nodeId)) {
    throw fail(
      ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
      `Pool ${poolName} holding image ${image.name} is not assigned to node ${nodeId}`,
      {
        poolId: image.location.poolId,
      },
    );
  }
  if (image.nodeId && image.nodeId !== nodeId) {
    throw fail(
      ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
      `Image ${image.name} is on node ${image.nodeId}, in a pool local to that node`,
      {
        poolId: pool.id,
      },
    );
  }
  if (state?.status !== 'active' || !state.mountPath) {
    const why = state
      ? `${state.status}${state.lastError ? `: ${state.lastError}` : ''}`
      : 'not reported by the node yet';
    throw fail(ErrorCode.POOL_NOT_ACTIVE_ON_NODE, `Pool ${poolName} is not active on node ${nodeId} (${why})`, {
      poolId: pool.id,
    });
  }
  const path = pathOnNode(state.mountPath, image.location.relPath);
  if (!(await fileExists(path, image.location))) {
    await repositories.images
      .update(image.id, { phase: 'missing' }, { expectedVersion: image.version })
      .catch(() => undefined);
    throw fail(
      ErrorCode.IMAGE_FILE_MISSING,
      `Image ${image.name} should be at ${path} on node ${nodeId}, but the file is not there`,
      {
        path,
      },
    );
  }
  return { image, pool, state, path };
}

/**
 * Every NIC's network or bridge is on the target node and started, checked before a VM row is
 * written or a hypervisor touched: NETWORK_NOT_FOUND names what the node has instead,
 * NETWORK_NOT_ACTIVE says it must be started first.
 */
export function checkVmNetworks(options: {
  nodeId: string;
  requested: readonly { attachment: NicAttachment; source: string }[];
  offered: readonly HostNetwork[];
}): void {
  const { nodeId, requested, offered } = options;
  for (const nic of requested) {
    const what = nic.attachment === 'network' ? `libvirt network ${nic.source}` : `bridge ${nic.source}`;
    const found = offered.find((n) => n.attachment === nic.attachment && n.name === nic.source);
    if (!found) {
      const choices = offered.map((n) => (n.attachment === 'bridge' ? `bridge:${n.name}` : n.name));
      throw new QuantixError(
        ErrorCode.NETWORK_NOT_FOUND,
        `Node ${nodeId} has no ${what}; it has ${choices.length > 0 ? choices.join(', ') : 'no networks or bridges'}`,
        { details: { nodeId, attachment: nic.attachment, source: nic.source, available: choices } },
      );
    }
    if (!found.active) {
      throw new QuantixError(
        ErrorCode.NETWORK_NOT_ACTIVE,
        `The ${what} on node ${nodeId} is not ${nic.attachment === 'network' ? 'started (virsh net-start)' : 'up'}; start it and retry`,
        { details: { nodeId, attachment: nic.attachment, source: nic.source } },
      );
    }
  }
}

/**
 * A VM boots from its image: an ISO without a boot record (isDataDisc) is refused before
 * anything is made (IMAGE_NOT_BOOTABLE) — the VM would start and find nothing to boot. Such a
 * disc goes into a VM's drive with insert instead.
 */
export function checkBootable(image: Pick<Image, 'id' | 'name' | 'kind' | 'labels'>): void {
  if (!isDataDisc(image)) return;
  throw new QuantixError(
    ControlPlaneErrorCode.IMAGE_NOT_BOOTABLE,
    `ISO ${image.name} has no boot record: it is a data disc (drivers, tools), which no VM can boot from; make the VM from an installer ISO or a cloud image, then insert this one into its drive`,
    { details: { imageId: image.id } },
  );
}

/**
 * What a VM asks for against what its image needs (its requirements, and for a disk made from
 * the image its virtual size): below it the VM would be made and started but not boot — a boot
 * loader with too little memory to load its kernel loops, the other firmware finds nothing to
 * boot, a disk smaller than its image cuts its file systems short. Refused before anything is
 * made (BELOW_IMAGE_REQUIREMENTS), each shortfall named. A size left out (a resize's disk) is
 * not checked.
 */
export function checkImageRequirements(
  image: Pick<Image, 'name' | 'kind' | 'requirements' | 'virtualSizeBytes'>,
  asked: { cpu?: number; memoryMiB?: number; diskGiB?: number; firmware?: 'bios' | 'uefi' },
): void {
  const needs = image.requirements;
  const short: string[] = [];
  if (asked.cpu !== undefined && asked.cpu < needs.minCpu)
    short.push(`at least ${needs.minCpu} vCPUs (asked ${asked.cpu})`);
  if (asked.memoryMiB !== undefined && asked.memoryMiB < needs.minMemoryMiB)
    short.push(`at least ${needs.minMemoryMiB} MiB of memory (asked ${asked.memoryMiB})`);
  const minDiskGiB = minDiskGiBOf(image);
  if (asked.diskGiB !== undefined && asked.diskGiB < minDiskGiB)
    short.push(`a disk of at least ${minDiskGiB} GiB (asked ${asked.diskGiB})`);
  if (asked.firmware !== undefined && needs.firmware !== 'any' && asked.firmware !== needs.firmware)
    short.push(`${needs.firmware} firmware (asked ${asked.firmware})`);
  if (short.length === 0) return;
  // Only the sizes and firmware: the request of a creation carries SSH keys, a user and NICs too.
  const { cpu, memoryMiB, diskGiB, firmware } = asked;
  throw new QuantixError(
    ControlPlaneErrorCode.BELOW_IMAGE_REQUIREMENTS,
    `Image ${image.name} needs ${short.join(', ')}; the VM would not boot as asked`,
    { details: { asked: { cpu, memoryMiB, diskGiB, firmware }, needs: { ...needs, minDiskGiB } } },
  );
}

/**
 * The smallest disk a VM of the image can have, in whole GiBs: its stated `minDiskGiB`, and for a
 * cloud image (the disk is made from it) its virtual size when known. An ISO's disk is blank.
 */
export function minDiskGiBOf(image: Pick<Image, 'kind' | 'requirements' | 'virtualSizeBytes'>): number {
  const ofImage = image.kind === 'cloud' && image.virtualSizeBytes ? Math.ceil(image.virtualSizeBytes / GIB) : 0;
  return Math.max(image.requirements.minDiskGiB, ofImage);
}
