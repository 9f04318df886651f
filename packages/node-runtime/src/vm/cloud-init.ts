import { parseOrThrow } from '@quantix/core';
import { z } from 'zod';

const hostnameSchema = z
  .string()
  .max(253)
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    'must be a host name (letters, digits and inner hyphens, dot-separated)',
  );

/** One OpenSSH public key line: a key type, base64, an optional comment; never a second line. */
const sshKeySchema = z
  .string()
  .max(16_384)
  .regex(/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/, 'must be one OpenSSH public key line');

export const cloudInitSchema = z
  .object({
    hostname: hostnameSchema,
    /** The account cloud-init creates, with passwordless sudo and key-only login. */
    user: z
      .object({
        name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Linux user name'),
        sshAuthorizedKeys: z.array(sshKeySchema).max(64).default([]),
      })
      .strict()
      .optional(),
    /** Keys for the image's default user (ubuntu, debian, …). */
    sshAuthorizedKeys: z.array(sshKeySchema).max(64).default([]),
  })
  .strict();

export type CloudInitConfig = z.input<typeof cloudInitSchema>;

export interface NoCloudSeed {
  userData: string;
  metaData: string;
}

/**
 * The two files of a NoCloud seed. cloud-init reads both as YAML, and JSON is YAML: every value
 * is written with JSON.stringify, so no hostname, user name or key can become YAML syntax.
 */
export function buildNoCloudSeed(options: { instanceId: string; config: CloudInitConfig }): NoCloudSeed {
  const config = parseOrThrow(cloudInitSchema, options.config, 'cloud-init settings');
  const userData: Record<string, unknown> = {
    hostname: config.hostname.split('.')[0],
    ...(config.hostname.includes('.') ? { fqdn: config.hostname } : {}),
    ssh_pwauth: false,
    ...(config.sshAuthorizedKeys.length > 0 ? { ssh_authorized_keys: config.sshAuthorizedKeys } : {}),
    ...(config.user
      ? {
          users: [
            'default',
            {
              name: config.user.name,
              sudo: 'ALL=(ALL) NOPASSWD:ALL',
              shell: '/bin/bash',
              lock_passwd: true,
              ssh_authorized_keys: config.user.sshAuthorizedKeys,
            },
          ],
        }
      : {}),
  };
  return {
    userData: `#cloud-config\n${JSON.stringify(userData, null, 2)}\n`,
    metaData: `${JSON.stringify({ 'instance-id': options.instanceId, 'local-hostname': config.hostname }, null, 2)}\n`,
  };
}
