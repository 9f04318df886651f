import { Help, Option } from 'commander';

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

const plainHelp = new Help();
/**
 * An option's line in --help: commander's, with "(required)" after a required one's (commander
 * shows them like any other). For `configureHelp({ optionDescription })` of both commands.
 */
export function describeOption(option: Option): string {
  const described = plainHelp.optionDescription(option);
  return option.mandatory ? `${described} (required)` : described;
}
