import { ErrorCode, type PoolContentType, QuantixError } from '@quantix/core';

/** File name endings of each content type, lower case; matching ignores case. */
export const CONTENT_EXTENSIONS: Readonly<Record<PoolContentType, readonly string[]>> = {
  iso: ['.iso'],
  images: ['.qcow2', '.raw', '.img'],
};

/**
 * Suffixes that mark a file still being written: a download or upload in progress must never be
 * picked up by a scan as if it were a finished image.
 */
export const TEMPORARY_SUFFIXES: readonly string[] = ['.partial', '.part', '.tmp', '.download', '.crdownload', '~'];

/**
 * Whether a directory entry is temporary or hidden and so not pool content: dotfiles and
 * dot-directories (`.upload-*`, `.snapshot`, our own write probes) and names ending in a
 * temporary suffix (`debian.iso.partial`).
 */
export function isTemporaryName(name: string): boolean {
  if (name.startsWith('.')) return true;
  // Listings ask this of every entry: most names end in a letter no suffix ends in, and are
  // answered without a lower-cased copy.
  if (!TEMPORARY_LAST_CHARACTERS.has(name.charAt(name.length - 1).toLowerCase())) return false;
  const lower = name.toLowerCase();
  for (const suffix of TEMPORARY_SUFFIXES) if (lower.endsWith(suffix)) return true;
  return false;
}

const TEMPORARY_LAST_CHARACTERS: ReadonlySet<string> = new Set(TEMPORARY_SUFFIXES.map((suffix) => suffix.slice(-1)));

/** Whether a file name is of the given content type (`ubuntu.ISO` is an ISO). Temporary names never are. */
export function matchesContent(name: string, content: PoolContentType): boolean {
  return contentMatcher(content)(name);
}

/** A predicate for one content type, built once per listing: listings call it for every file. */
export function contentMatcher(content: PoolContentType): (name: string) => boolean {
  const extensions = CONTENT_EXTENSIONS[content];
  if (!extensions) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Unknown pool content type ${JSON.stringify(content)}`, {
      details: { content, known: Object.keys(CONTENT_EXTENSIONS) },
    });
  }
  return (name) => {
    const dot = name.lastIndexOf('.');
    if (dot <= 0) return false;
    const ending = name.slice(dot);
    // Most names are lower case already: no lower-cased copy of each.
    return (extensions.includes(ending) || extensions.includes(ending.toLowerCase())) && !isTemporaryName(name);
  };
}
