import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from './program.js';

/** Every command under `program`, with its full name (`quantix pools create`). */
function commandsOf(command: Command, prefix = ''): [string, Command][] {
  const name = `${prefix}${command.name()}`;
  return [[name, command], ...command.commands.flatMap((c) => commandsOf(c, `${name} `))];
}

describe('the quantix command line', () => {
  const commands = commandsOf(buildProgram());

  it('describes every command and every option in --help', () => {
    const undescribed = commands.flatMap(([name, command]) => [
      ...(command.description() ? [] : [name]),
      ...command.options.filter((o) => !o.description).map((o) => `${name} ${o.flags}`),
    ]);
    expect(undescribed).toEqual([]);
    expect(commands.length).toBeGreaterThan(20);
  });

  it('says in --help which options are required, on every command', () => {
    // One line per option, its flags and description one space apart, once the wrapping is undone.
    const help = (command: Command) =>
      command
        .helpInformation()
        .replace(/\n {20,}/g, ' ')
        .replace(/ {2,}/g, ' ');
    const importHelp = help(commands.find(([name]) => name === 'quantix images import')?.[1] ?? buildProgram());
    expect(importHelp).toContain(
      '--sha256 <hex> the SHA-256 of the file as downloaded (sha256sum prints it): the node verifies it (required)',
    );
    expect(importHelp).toContain(
      '--pool <pool> the pool to import into (id or name; default: the only pool that takes images, when there is one)\n',
    );
    expect(importHelp).toContain('--name <name> the image name\n');
    for (const [name, command] of commands) {
      const required = command.options.filter((option) => option.mandatory).length;
      expect(help(command).match(/\(required\)$/gm)?.length ?? 0, name).toBe(required);
    }
  });
});
