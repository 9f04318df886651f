/**
 * Arguments that a shell would act on if they were not quoted, for the tests that prove they are
 * passed literally (locally through sh and bash, remotely through a real sshd). `MARKER` stands for
 * a file that any of them would create if it ran; the tests assert it never appears.
 */
export function hostileArguments(marker: string): string[] {
  return [
    "'",
    '"',
    "it's",
    `'; touch ${marker}; '`,
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `; touch ${marker}`,
    `&& touch ${marker}`,
    `| touch ${marker}`,
    `\ntouch ${marker}\n`,
    `$(printf x > ${marker})`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, meant literally
    '${IFS}',
    '$HOME',
    '$$',
    '\\',
    "\\'",
    '*',
    '?',
    '[a-z]*',
    '~',
    '~root',
    '{a,b}',
    '!',
    '#not a comment',
    'two  spaces',
    '\ttab\t',
    'carriage\rreturn',
    'žluťoučký kůň 🐎 日本語',
    '',
    '-n',
    '--help',
    '-e',
    '-',
    '--',
    '>out',
    '<in',
    '2>&1',
  ];
}
