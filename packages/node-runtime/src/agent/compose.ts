import {
  CommandRunnerToken,
  type FileInspector,
  FileInspectorToken,
  HypervisorToken,
  ImageConverterToken,
  ImageFetcherToken,
  PoolTypeToken,
  type QuantixNode,
  StorageBackendToken,
} from '@quantix/core';
import { VmProvisionerToken } from '../plugin.js';
import { NodeAgent, type NodeAgentOptions } from './node-agent.js';

/** What createNodeAgent takes beyond what the plugins provide. */
export type NodeAgentSettings = Omit<
  NodeAgentOptions,
  'backends' | 'poolTypes' | 'fetchers' | 'converter' | 'inspector' | 'hypervisor' | 'vms' | 'runner'
>;

/**
 * The node agent of a node built by the kernel (`createQuantix({ database: false, plugins })`):
 * its storage backends, pool types, fetchers and file inspectors are whatever the plugins
 * provide, its VMs those of the node runtime plugin when it is there. A new storage plugin needs
 * no change here or in the daemon.
 */
export function createNodeAgent(
  node: Pick<QuantixNode, 'get' | 'getAll' | 'has'>,
  settings: NodeAgentSettings,
): NodeAgent {
  const inspectors = node.getAll(FileInspectorToken);
  // Several inspectors (one per kind of file): the first that has something to say answers.
  const inspector: FileInspector | undefined =
    inspectors.length === 0
      ? undefined
      : {
          async inspect(file) {
            for (const one of inspectors) {
              const found = await one.inspect(file);
              if (found) return found;
            }
            return null;
          },
        };
  const vms = node.has(HypervisorToken) && node.has(VmProvisionerToken);
  return new NodeAgent({
    ...settings,
    backends: node.getAll(StorageBackendToken),
    poolTypes: node.getAll(PoolTypeToken),
    fetchers: node.getAll(ImageFetcherToken),
    ...(inspector ? { inspector } : {}),
    ...(node.has(ImageConverterToken) ? { converter: node.get(ImageConverterToken) } : {}),
    ...(vms ? { hypervisor: node.get(HypervisorToken), vms: node.get(VmProvisionerToken) } : {}),
    ...(node.has(CommandRunnerToken) ? { runner: node.get(CommandRunnerToken) } : {}),
  });
}
