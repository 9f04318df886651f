/** Test support for packages whose tests need a real NFS server: a loopback nfs-ganesha. */
export { NFS_SERVER_SCRIPT, type NfsTestServer, startNfsTestServer } from './ganesha.js';
