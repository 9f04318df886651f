/**
 * The last segment of a URL's path, decoded: the name of the file it serves, and the name a
 * checksum file lists it under. Empty for a URL that ends in `/`.
 */
export function fileNameOfUrl(url: string | URL): string {
  const path = (typeof url === 'string' ? new URL(url) : url).pathname;
  const last = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(last);
  } catch {
    // A malformed escape is kept as written rather than failing the download.
    return last;
  }
}
