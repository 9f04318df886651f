/** Numeric parts of a version ("15sp6" → [15, 6], "10.0" → [10, 0], "r1beta4" → [1, 4]). */
export function versionParts(version: string): number[] {
  return (version.match(/\d+/g) ?? []).map(Number);
}

/** Orders versions by their numeric parts; a missing part counts as 0 ("10" equals "10.0"). */
export function compareVersions(a: string, b: string): number {
  const x = versionParts(a);
  const y = versionParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
