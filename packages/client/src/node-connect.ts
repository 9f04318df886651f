/** The file the commands put a node's token in (`quantix-node` is then given it with `--token-file`). */
const NODE_TOKEN_FILE = '/etc/quantix/node-token';

/**
 * The two commands that connect a node whose token was just issued (registered, or given a new
 * one), as the CLI prints them and the web UI shows them: the token goes into a file only root
 * can read, then the daemon starts with `--token-file`. Never `--token`: a command line is seen
 * by every user of the host (`ps`). With `replicas` (GET /replicas) of which several have their
 * own URL, one `--url` each: the daemon dials the next when one does not answer; else `url`.
 */
export function nodeConnectCommands(options: {
  url: string;
  replicas?: readonly { url: string | null }[];
  nodeId: string;
  token: string;
}): {
  installToken: string;
  startDaemon: string;
} {
  const { nodeId, token } = options;
  const own = (options.replicas ?? []).flatMap((replica) => (replica.url ? [replica.url] : []));
  const urls = (own.length > 1 ? own : [options.url]).map((url) => `--url ${url}`).join(' ');
  return {
    installToken: `install -d -m 700 /etc/quantix && install -m 600 /dev/stdin ${NODE_TOKEN_FILE} <<< '${token}'`,
    startDaemon: `quantix-node ${urls} --node-id ${nodeId} --token-file ${NODE_TOKEN_FILE}`,
  };
}
