import { Option } from 'commander';

/** `--virt-type`: how the node's VMs run (`quantix-node`, and `quantix up` for its local node). */
export function virtTypeOption(): Option {
  return new Option(
    '--virt-type <type>',
    'how VMs run: kvm, qemu (TCG emulation: slower, but boots guests a nested KVM cannot run), or auto (kvm when libvirt offers it)',
  )
    .choices(VIRT_TYPES)
    .env('QUANTIX_VIRT_TYPE')
    .default('auto');
}

/** What `--virt-type` takes. */
export const VIRT_TYPES = ['kvm', 'qemu', 'auto'] as const;
export type VirtType = (typeof VIRT_TYPES)[number];
