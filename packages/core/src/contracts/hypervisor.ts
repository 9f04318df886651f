import type { Readable, Writable } from 'node:stream';
import type { HostNetwork, VmAddress } from '../domain/network.js';

export const DOMAIN_STATES = [
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
  'unknown',
] as const;
export type DomainState = (typeof DOMAIN_STATES)[number];

/**
 * Why a domain is in its state, where that is something to act on (libvirt's state reasons):
 * paused by QEMU because a disk could not be written (its pool full, say) or by a watchdog;
 * shut off because it crashed; crashed because its guest panicked.
 */
export const DOMAIN_STATE_REASONS = ['ioerror', 'watchdog', 'crashed', 'panicked'] as const;
export type DomainStateReason = (typeof DOMAIN_STATE_REASONS)[number];

/** The consoles a VM can have: its first serial port, and its graphical display over VNC. */
export const CONSOLE_TYPES = ['serial', 'vnc'] as const;
export type ConsoleType = (typeof CONSOLE_TYPES)[number];

/**
 * A VM's console, open: the bytes the VM writes (serial output, or the VNC server's side of RFB)
 * and a way to write to it. close() ends it; `ended` settles when it ended, by close() or by itself.
 */
export interface ConsoleStream {
  readonly output: Readable;
  readonly input: Writable;
  close(): void;
  readonly ended: Promise<void>;
}

export interface DomainInfo {
  name: string;
  uuid: string;
  state: DomainState;
  /** Why, where it is one of DOMAIN_STATE_REASONS (else absent). */
  reason?: DomainStateReason;
}

/** What the host can give VMs at most. */
export interface HostInfo {
  /** Logical CPUs of the host. */
  cpus: number;
  /** Physical memory of the host, in MiB. */
  memoryMiB: number;
}

/** A domain's vCPUs and memory, as its definition says. */
export interface DomainResources {
  cpu: number;
  memoryMiB: number;
}

/** Drives one hypervisor host's domains (libvirt). Names are validated VM names. */
export interface Hypervisor {
  /** The host's CPUs and memory: the control plane refuses a VM larger than its node before asking. */
  hostInfo?(): Promise<HostInfo>;
  /** The libvirt networks and host bridges a NIC can plug into on this host. */
  networks?(): Promise<HostNetwork[]>;
  /** A domain's addresses: DHCP leases of its libvirt networks, else its guest agent's answer. */
  interfaceAddresses?(options: { name: string }): Promise<VmAddress[]>;
  define(options: { xml: string }): Promise<DomainInfo>;
  start(options: { name: string }): Promise<void>;
  /** Lets a paused domain run on (paused by someone, or by QEMU on a disk's I/O error). */
  resume(options: { name: string }): Promise<void>;
  /** Asks the guest to shut down (ACPI). */
  shutdown(options: { name: string }): Promise<void>;
  /** Asks the guest to reboot (ACPI); the domain stays running. */
  reboot(options: { name: string }): Promise<void>;
  /** Stops the domain at once. */
  destroy(options: { name: string }): Promise<void>;
  undefine(options: { name: string; removeStorage?: boolean }): Promise<void>;
  list(): Promise<DomainInfo[]>;
  state(options: { name: string }): Promise<DomainState>;
  dumpXml(options: { name: string }): Promise<string>;
  attachDisk(options: { name: string; sourcePath: string; target: string; format?: string }): Promise<void>;
  detachDisk(options: { name: string; target: string }): Promise<void>;
  /**
   * Sets a shut-off domain's vCPUs and memory in its definition (what is left out stays);
   * INVALID_STATE while it runs or is paused. Returns what its definition then says.
   */
  setResources?(options: { name: string; cpu?: number; memoryMiB?: number }): Promise<DomainResources>;
  insertMedia(options: { name: string; target: string; sourcePath: string }): Promise<void>;
  ejectMedia(options: { name: string; target: string }): Promise<void>;
  /**
   * Opens a running domain's console of `type` (CONSOLE_UNAVAILABLE when it has none or is not
   * running). A serial console is one reader at a time: opening it takes it from another reader.
   */
  openConsole?(options: { name: string; type: ConsoleType }): Promise<ConsoleStream>;
}
