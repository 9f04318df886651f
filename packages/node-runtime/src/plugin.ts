import { readFileSync } from 'node:fs';
import {
  type CommandRunner,
  CommandRunnerToken,
  createServiceToken,
  definePlugin,
  HypervisorToken,
  LocalCommandRunner,
  parseOrThrow,
  type QuantixPlugin,
} from '@quantix/core';
import { z } from 'zod';
import { DEFAULT_LIBVIRT_URI, LibvirtHypervisor } from './libvirt/hypervisor.js';
import { SshCommandRunner } from './ssh/runner.js';
import { VmProvisioner } from './vm/provisioner.js';

export const NODE_RUNTIME_PLUGIN_NAME = '@quantix/node-runtime';

/** VM creation from cloud images and ISOs on the configured host. */
export const VmProvisionerToken = createServiceToken<VmProvisioner>('quantix.node-runtime.vm-provisioner');

const sshRunnerSchema = z
  .object({
    kind: z.literal('ssh'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(22),
    username: z.string().min(1).default('root'),
    /** Path of the private key file (read once, when the runner is made). */
    privateKeyPath: z.string().min(1),
    passphrase: z.string().optional(),
    /** The host key's SHA-256 fingerprint, as `ssh-keygen -lf` prints it. */
    hostFingerprint: z.string().optional(),
    /** With no fingerprint, pin the key seen on first connection (logged) instead of refusing. */
    trustOnFirstUse: z.boolean().default(false),
    maxChannels: z.number().int().min(1).max(64).optional(),
    defaultTimeoutMs: z.number().int().positive().optional(),
  })
  .strict();

export const nodeRuntimeConfigSchema = z
  .object({
    /** Where virsh, qemu-img and xorriso run: this machine, or a hypervisor host over SSH. */
    runner: z
      .discriminatedUnion('kind', [z.object({ kind: z.literal('local') }).strict(), sshRunnerSchema])
      .default({ kind: 'local' }),
    libvirt: z
      .object({
        uri: z.string().min(1).default(DEFAULT_LIBVIRT_URI),
        /** 'auto' asks libvirt whether KVM works, else TCG. */
        virtType: z.enum(['kvm', 'qemu', 'auto']).default('auto'),
      })
      .strict()
      .default({ uri: DEFAULT_LIBVIRT_URI, virtType: 'auto' }),
  })
  .strict();

export type NodeRuntimeConfig = z.input<typeof nodeRuntimeConfigSchema>;

/**
 * Provides the CommandRunner (local, or one persistent SSH connection), the libvirt Hypervisor
 * over it and the VmProvisioner. Configured by the argument, or else by `config.nodeRuntime`
 * given to createQuantix; a bad configuration fails start-up with INVALID_INPUT.
 */
export function createNodeRuntimePlugin(config?: NodeRuntimeConfig): QuantixPlugin {
  return definePlugin({
    name: NODE_RUNTIME_PLUGIN_NAME,
    // The plugin API range this package was written against (not core's constant, which always matches).
    apiVersion: '^1.1.0',
    // Uses only the services it provides itself; declared so that a use of any other fails loudly.
    needs: [],
    register(ctx) {
      const settings = parseOrThrow(
        nodeRuntimeConfigSchema,
        config ?? ctx.config.nodeRuntime ?? {},
        `${NODE_RUNTIME_PLUGIN_NAME} configuration`,
      );
      let runner: CommandRunner | null = null;
      let hypervisor: LibvirtHypervisor | null = null;
      ctx.provide(CommandRunnerToken, {
        factory: (c) => {
          const logger = c.logger.child({ plugin: NODE_RUNTIME_PLUGIN_NAME });
          const spec = settings.runner;
          runner =
            spec.kind === 'local'
              ? new LocalCommandRunner()
              : new SshCommandRunner({
                  host: spec.host,
                  port: spec.port,
                  username: spec.username,
                  privateKey: readFileSync(spec.privateKeyPath),
                  passphrase: spec.passphrase,
                  hostKey: {
                    fingerprint: spec.hostFingerprint ?? null,
                    trustOnFirstUse: spec.trustOnFirstUse,
                    onPin: ({ fingerprint }) =>
                      logger.warn(
                        { host: spec.host, fingerprint },
                        'SSH host key pinned on first use; put it in the configuration',
                      ),
                  },
                  maxChannels: spec.maxChannels,
                  defaultTimeoutMs: spec.defaultTimeoutMs,
                  logger,
                });
          return runner;
        },
      });
      ctx.provide(HypervisorToken, {
        factory: (c) => {
          hypervisor = new LibvirtHypervisor({
            runner: c.get(CommandRunnerToken),
            uri: settings.libvirt.uri,
            logger: c.logger.child({ plugin: NODE_RUNTIME_PLUGIN_NAME }),
          });
          return hypervisor;
        },
      });
      ctx.provide(VmProvisionerToken, {
        factory: (c) =>
          new VmProvisioner({
            runner: c.get(CommandRunnerToken),
            hypervisor: c.get(HypervisorToken),
            virtType: settings.libvirt.virtType,
            logger: c.logger.child({ plugin: NODE_RUNTIME_PLUGIN_NAME }),
          }),
      });
      ctx.onClose(async () => {
        // Its kept-open virsh first, while the runner it runs on is still open.
        await hypervisor?.close();
        await runner?.close();
      });
    },
  });
}
