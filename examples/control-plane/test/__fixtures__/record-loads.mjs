// Module hooks (node:module register, run on the hooks thread): every module the process
// resolves is appended to the file QUANTIX_LOAD_LOG names, one URL a line.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (process.env.QUANTIX_LOAD_LOG) appendFileSync(process.env.QUANTIX_LOAD_LOG, `${resolved.url}\n`);
  return resolved;
}
