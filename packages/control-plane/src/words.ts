/** How many of the things that stand in the way a refusal names (its details may list them all). */
export const NAMED_IN_REFUSALS = 5;

/** The first names of `total` things, and how many more there are: "a, b, c and 4 more". */
export function someNamed(names: readonly string[], total = names.length): string {
  const named = names.slice(0, NAMED_IN_REFUSALS);
  return `${named.join(', ')}${total > named.length ? ` and ${total - named.length} more` : ''}`;
}
