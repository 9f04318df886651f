/** The file the commands put a node's token in (`quantix-node` is then given it with `--token-file`). */
const NODE_TOKEN_FILE = '/etc/quantix/node-token';

/**
 * The two commands that connect a node whose token was just issued (registered, or given a new
 * one), as the CLI prints them and the web UI shows them: the token goes into a file only root
 * can read, then the daemon starts with `--token-file`. Never `--token`: a command line is seen
 * by every user of the host (`ps`). Several URLs (one per replica) give one `--url` each: the
 * daemon dials the next when one does not answer.
 */
export function nodeConnectCommands(options: { url: string | readonly string[]; nodeId: string; token: string }): {
  installToken: string;
  startDaemon: string;
} {
  const { url, nodeId, token } = options;
  const urls = (typeof url === 'string' ? [url] : url).map((one) => `--url ${one}`).join(' ');
  return {
    installToken: `install -d -m 700 /etc/quantix && install -m 600 /dev/stdin ${NODE_TOKEN_FILE} <<< '${token}'`,
    startDaemon: `quantix-node ${urls} --node-id ${nodeId} --token-file ${NODE_TOKEN_FILE}`,
  };
}
