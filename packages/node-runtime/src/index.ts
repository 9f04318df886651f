export { createNodeAgent, type NodeAgentSettings } from './agent/compose.js';
export { NodeAgent, type NodeAgentOptions, type VmLifecycle } from './agent/node-agent.js';
export { NodeRuntimeErrorCode } from './errors.js';
export { buildDomainXml, type DomainSpec } from './libvirt/domain-xml.js';
export { DEFAULT_LIBVIRT_URI, LibvirtHypervisor, type LibvirtHypervisorOptions } from './libvirt/hypervisor.js';
export {
  type InteractiveCommandRunner,
  quoteVirshArg,
  VirshSession,
  type VirshSessionOptions,
} from './libvirt/virsh-session.js';
export {
  createNodeRuntimePlugin,
  NODE_RUNTIME_PLUGIN_NAME,
  type NodeRuntimeConfig,
  VmProvisionerToken,
} from './plugin.js';
export { publicKeyFingerprint, sshKeyFingerprint } from './ssh/fingerprint.js';
export { quoteArgv, quoteShellArg } from './ssh/quote.js';
export {
  DEFAULT_SSH_MAX_CHANNELS,
  type HostKeyPolicy,
  type InteractiveProcess,
  SshCommandRunner,
  type SshCommandRunnerOptions,
} from './ssh/runner.js';
export { buildNoCloudSeed, type CloudInitConfig, type NoCloudSeed } from './vm/cloud-init.js';
export {
  type CloudVmOptions,
  type CreatedVm,
  type IsoVmOptions,
  VmProvisioner,
  type VmProvisionerOptions,
} from './vm/provisioner.js';
