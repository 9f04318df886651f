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
});
