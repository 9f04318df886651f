// One process per ISO, as a shell loop or a CLI call would run it: the BUILT package, osinfo-db
// from its cache file (QUANTIX_CACHE_DIR), one ISO read and identified; prints the short id.
import { getOsinfoDatabase, inspectIso } from '@quantix/images-iso';

const [path] = process.argv.slice(2);
const found = await inspectIso({ path, fileName: 'disc.iso', osinfo: await getOsinfoDatabase() });
process.stdout.write(`${found.identification.shortId ?? ''}\n`);
