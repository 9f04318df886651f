import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, LocalCommandRunner } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LIBVIRT_URI,
  processGone,
  rejection,
  requireServices,
  testSshRunnerOptions,
  waitFor,
} from '../__fixtures__/services.js';
import { hostileArguments } from '../ssh/hostile.js';
import { SshCommandRunner } from '../ssh/runner.js';
import { LibvirtHypervisor } from './hypervisor.js';
import { quoteVirshArg, VirshSession } from './virsh-session.js';

// A kept-open virsh on the real libvirtd, reached through the real test sshd (and locally); the
// remote virsh runs on this machine, so the tests can stop and kill it by its PID.

const TIMEOUT = { timeoutMs: 30_000 };

describe('VirshSession over SSH', () => {
  let ssh: SshCommandRunner;
  let session: VirshSession;
  let dir: string;

  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
    dir = await mkdtemp(join(tmpdir(), 'quantix-virsh-session-'));
    ssh = new SshCommandRunner(testSshRunnerOptions());
    session = new VirshSession({ runner: ssh, uri: LIBVIRT_URI });
  });

  afterAll(async () => {
    await session?.close();
    await ssh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers many commands in one virsh over one SSH connection, in call order', async () => {
    const version = await session.run(['version', '--daemon'], TIMEOUT);
    expect(version).toMatch(/Running against daemon: \d+\.\d+/);
    const calls = Array.from({ length: 40 }, (_, i) =>
      i % 2 === 0 ? session.run(['echo', `answer-${i}`], TIMEOUT) : session.run(['uri'], TIMEOUT),
    );
    const answers = await Promise.all(calls);
    answers.forEach((answer, i) => {
      expect(answer).toBe(i % 2 === 0 ? `answer-${i}` : `${LIBVIRT_URI}\n`);
    });
    expect(session.sessionCount).toBe(1);
    expect(ssh.connectionCount).toBe(1);
  });

  it('passes hostile arguments to virsh literally, and refuses what it cannot quote', async () => {
    const marker = join(dir, 'ran');
    for (const arg of hostileArguments(marker)) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are the point
      if (/[\u0000-\u001f]/.test(arg)) {
        expect((await rejection(session.run(['echo', '--', arg], TIMEOUT))).code, JSON.stringify(arg)).toBe(
          ErrorCode.INVALID_INPUT,
        );
        continue;
      }
      // `--` ends virsh's options, so '--help' and '-e' are words to echo like any other.
      expect(await session.run(['echo', '--', arg], TIMEOUT), JSON.stringify(arg)).toBe(arg);
    }
    // Several words at once, with virsh's own separators and comment sign inside them.
    const words = ["it's", 'a "b"', 'x;echo y', '#z', 'back\\slash', "'"];
    expect(await session.run(['echo', '--', ...words], TIMEOUT)).toBe(words.join(' '));
    // Longer than any terminal: virsh's line editor must echo it whole, not scroll it sideways.
    const long = `${"it's ".repeat(4_000)}end`;
    expect(await session.run(['echo', '--', long], TIMEOUT)).toBe(long);
    expect(existsSync(marker)).toBe(false);
    expect(() => quoteVirshArg('two\nlines')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
    // Words of plain characters go bare (fewer bytes for virsh's line editor), and still arrive whole.
    for (const word of ['qxt-vm_1.img', '/var/lib/quantix/pool/a.qcow2', 'a=b,c+d@e:f%g']) {
      expect(quoteVirshArg(word)).toBe(word);
      expect(await session.run(['echo', '--', word], TIMEOUT)).toBe(word);
    }
    expect(quoteVirshArg('')).toBe("''");
    expect(await session.run(['echo', '--', 'x', '', 'y'], TIMEOUT)).toBe('x  y');
    // A refused argument ran nothing, and the session goes on.
    expect(await session.run(['echo', 'still here'], TIMEOUT)).toBe('still here');
  });

  it("reports virsh's errors per command, with the next command unaffected", async () => {
    const failed = await rejection(session.run(['domstate', '--domain', 'qxt-no-such-domain'], TIMEOUT));
    expect(failed.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(failed.details).toMatchObject({ exitCode: 1 });
    expect(String(failed.details.stderr)).toMatch(/^error: failed to get domain 'qxt-no-such-domain'/);
    expect(await session.run(['echo', 'after the error'], TIMEOUT)).toBe('after the error');
    expect((await rejection(session.run(['no-such-command'], TIMEOUT))).details).toMatchObject({ exitCode: 1 });
  });

  it('kills a session that stops answering, and starts a new one for the next command', async () => {
    await session.run(['uri'], TIMEOUT);
    const hung = session.process;
    expect(hung).not.toBeNull();
    const pid = hung?.pid as number;
    const before = session.sessionCount;
    process.kill(pid, 'SIGSTOP');
    // The second call waits behind the hung one, then gets a new session.
    const [timedOut, queued] = await Promise.all([
      rejection(session.run(['uri'], { timeoutMs: 1_000 })),
      session.run(['echo', 'queued'], TIMEOUT),
    ]);
    expect(timedOut.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(queued).toBe('queued');
    // Killed where it ran (a stopped process too), not left behind.
    expect(await waitFor(() => processGone(pid), 10_000)).toBe(true);
    expect(await session.run(['uri'], TIMEOUT)).toBe(`${LIBVIRT_URI}\n`);
    expect(session.sessionCount).toBe(before + 1);
    expect(session.process?.pid).not.toBe(pid);

    // A call whose time runs out while it waits behind a hung one fails without being sent.
    process.kill(session.process?.pid as number, 'SIGSTOP');
    const [hungAgain, behind] = await Promise.all([
      rejection(session.run(['uri'], { timeoutMs: 800 })),
      rejection(session.run(['echo', 'too late'], { timeoutMs: 100 })),
    ]);
    expect(hungAgain.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(behind.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(behind.message).toContain('did not get its turn');
    expect(session.sessionCount).toBe(before + 1);
  });

  it('replaces a session that died between commands without the caller noticing', async () => {
    await session.run(['uri'], TIMEOUT);
    const current = session.process;
    const before = session.sessionCount;
    process.kill(current?.pid as number, 'SIGKILL');
    await current?.ended;
    expect(await session.run(['echo', 'new session'], TIMEOUT)).toBe('new session');
    expect(session.sessionCount).toBe(before + 1);
  });
});

describe('LibvirtHypervisor on a kept-open virsh', () => {
  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
  });

  it('keeps the stable error codes over SSH, and ends its session on close', async () => {
    const ssh = new SshCommandRunner(testSshRunnerOptions());
    const hypervisor = new LibvirtHypervisor({ runner: ssh, uri: LIBVIRT_URI });
    try {
      expect(hypervisor.session).not.toBeNull();
      expect((await rejection(hypervisor.state({ name: 'qxt-no-such-domain' }))).code).toBe(ErrorCode.NOT_FOUND);
      expect((await rejection(hypervisor.start({ name: 'qxt-no-such-domain' }))).code).toBe(ErrorCode.NOT_FOUND);
      expect((await hostInfoOf(hypervisor)).cpus).toBeGreaterThan(0);
      const pid = hypervisor.session?.process?.pid as number;
      expect(hypervisor.session?.sessionCount).toBe(1);
      await hypervisor.close();
      expect(await waitFor(() => processGone(pid), 10_000)).toBe(true);
    } finally {
      await ssh.close();
    }
  });

  it('leaves no virsh running on the host when the SSH runner is closed under it', async () => {
    const ssh = new SshCommandRunner(testSshRunnerOptions());
    const hypervisor = new LibvirtHypervisor({ runner: ssh, uri: LIBVIRT_URI });
    await hypervisor.list();
    const pid = hypervisor.session?.process?.pid as number;
    expect(processGone(pid)).toBe(false);
    await ssh.close();
    expect(await waitFor(() => processGone(pid), 10_000)).toBe(true);
    expect((await rejection(hypervisor.list())).code).toBe(ErrorCode.INSTANCE_CLOSED);
  });

  it('uses a local virsh child process with core’s LocalCommandRunner', async () => {
    const hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: LIBVIRT_URI });
    try {
      expect((await rejection(hypervisor.state({ name: 'qxt-no-such-domain' }))).code).toBe(ErrorCode.NOT_FOUND);
      const listed = await hypervisor.list();
      expect(Array.isArray(listed)).toBe(true);
      expect(hypervisor.session?.sessionCount).toBe(1);
    } finally {
      await hypervisor.close();
    }
  });

  it('kills a session whose command writes more than the output limit, and goes on', async () => {
    const session = new VirshSession({ runner: new LocalCommandRunner(), uri: 'test:///default', maxOutputBytes: 200 });
    try {
      const tooMuch = await rejection(session.run(['dumpxml', '--domain', 'test'], TIMEOUT));
      expect(tooMuch.code).toBe(ErrorCode.COMMAND_FAILED);
      expect(tooMuch.details.reason).toBe('output-limit');
      expect(await session.run(['domstate', '--domain', 'test'], TIMEOUT)).toBe('running\n');
      expect(session.sessionCount).toBe(2);
    } finally {
      await session.close();
    }
  });

  it('runs a virsh process per call when asked to', async () => {
    const hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: LIBVIRT_URI, session: false });
    expect(hypervisor.session).toBeNull();
    expect((await rejection(hypervisor.state({ name: 'qxt-no-such-domain' }))).code).toBe(ErrorCode.NOT_FOUND);
  });
});

function hostInfoOf(hypervisor: LibvirtHypervisor) {
  return hypervisor.hostInfo();
}
