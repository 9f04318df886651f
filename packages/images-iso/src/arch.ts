/** Canonical architecture names (libvirt's and osinfo-db's) for the spellings media use. */
export function normalizeArch(arch: string | null | undefined): string | null {
  if (!arch) return null;
  const lower = arch.toLowerCase();
  switch (lower) {
    case 'amd64':
    case 'x64':
    case 'x86_64':
    case 'x86-64':
      return 'x86_64';
    case 'arm64':
    case 'a64':
    case 'aarch64':
      return 'aarch64';
    case 'i386':
    case 'i486':
    case 'i586':
    case 'i686':
    case 'x86':
      return 'i686';
    case 'ppc64el':
    case 'ppc64le':
    case 'p64el': // Debian's spelling where the full one would not fit in a volume id
      return 'ppc64le';
    case 'armhf':
    case 'armhfp':
    case 'armv7':
    case 'armv7l':
    case 'armv7hl':
      return 'armv7l';
    case 'riscv':
    case 'riscv64':
      return 'riscv64';
    case 'all':
      return null;
    default:
      return lower;
  }
}

/**
 * The architecture a label's token names: a spelling the family uses, or the one spelling the token
 * starts ("ppc64" and "riscv" on Ubuntu media are ppc64el and riscv64: labels are short, and
 * 32-character ones get cut). Other tokens are taken as they are.
 */
export function archFromToken(token: string | undefined, spellings: readonly string[]): string | null {
  if (!token) return null;
  if (!spellings.includes(token)) {
    const completions = spellings.filter((s) => s.startsWith(token));
    if (completions.length === 1) return normalizeArch(completions[0]);
  }
  return normalizeArch(token);
}
