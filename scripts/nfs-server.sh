#!/usr/bin/env bash
# A loopback NFS server (userspace nfs-ganesha with a VFS export) for the storage-nfs tests.
# The kernel on these machines has no NFS server or client; ganesha serves NFSv3 and v4 on
# 127.0.0.1 without either. Installs what is missing (Debian), starts rpcbind if it is not
# running, and keeps its own config, log and PID file in a state directory. Idempotent.
#
#   bash scripts/nfs-server.sh start EXPORT_DIR   # (re)start exporting EXPORT_DIR; no-op if already so
#   bash scripts/nfs-server.sh stop               # stop ganesha (rpcbind is left running)
#   bash scripts/nfs-server.sh status             # exit 0 and print the PID while ganesha runs
#   bash scripts/nfs-server.sh pid                # the PID, or nothing
#
# State directory: $QUANTIX_NFS_STATE_DIR (default /tmp/quantix-nfs-server).
set -euo pipefail

STATE_DIR=${QUANTIX_NFS_STATE_DIR:-/tmp/quantix-nfs-server}
PID_FILE=$STATE_DIR/ganesha.pid
CONF_FILE=$STATE_DIR/ganesha.conf
LOG_FILE=$STATE_DIR/ganesha.log
EXPORT_FILE=$STATE_DIR/export
START_TIMEOUT_S=${QUANTIX_NFS_START_TIMEOUT_S:-30}

log() { printf '[nfs-server] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=()
  command -v ganesha.nfsd >/dev/null 2>&1 || missing+=(nfs-ganesha)
  [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || compgen -G '/usr/lib/*/ganesha/libfsalvfs.so' >/dev/null ||
    missing+=(nfs-ganesha-vfs)
  command -v rpcbind >/dev/null 2>&1 || [ -x /usr/sbin/rpcbind ] || [ -x /sbin/rpcbind ] || missing+=(rpcbind)
  command -v showmount >/dev/null 2>&1 || [ -x /usr/sbin/showmount ] || [ -x /sbin/showmount ] || missing+=(nfs-common)
  command -v nfs-ls >/dev/null 2>&1 || missing+=(libnfs-utils)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  # policy-rc.d on these machines stops apt from starting daemons; we start them ourselves.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common libnfs-utils >/dev/null
}

# The PID in our PID file, if that process is alive and is ganesha.
running_pid() {
  [ -s "$PID_FILE" ] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [ -n "$pid" ] || return 1
  [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm")" = ganesha.nfsd ] || return 1
  printf '%s\n' "$pid"
}

# Ganesha processes on our config that our PID file does not name (a run interrupted between
# starting one and writing its PID): they hold port 2049 and would make every start fail.
stop_orphans() {
  local known orphan
  known=$(running_pid || true)
  for orphan in $(pgrep -f -- "ganesha.nfsd .*-f $CONF_FILE" || true); do
    [ "$orphan" = "$known" ] && continue
    log "stopping a ganesha on our config that no PID file names (pid $orphan)"
    kill -CONT "$orphan" 2>/dev/null || true
    kill -KILL "$orphan" 2>/dev/null || true
  done
}

ensure_rpcbind() {
  # Ganesha registers its programs with rpcbind; showmount and rpcinfo ask it for ports.
  if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then return 0; fi
  log 'starting rpcbind'
  mkdir -p /run/rpcbind
  as_root rpcbind -w
  for _ in $(seq 1 50); do
    rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die 'rpcbind did not come up'
}

write_config() {
  local export_dir=$1
  cat >"$CONF_FILE" <<EOF
# Written by scripts/nfs-server.sh; loopback only.
NFS_CORE_PARAM {
  Bind_addr = 127.0.0.1;
  Protocols = 3, 4;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 {
  Graceless = true;
  RecoveryBackend = fs;
}
EXPORT {
  Export_Id = 1;
  Path = "$export_dir";
  Pseudo = "$export_dir";
  Access_Type = RW;
  Squash = No_Root_Squash;
  Protocols = 3, 4;
  Transports = TCP, UDP;
  SecType = sys;
  CLIENT { Clients = 127.0.0.1; Access_Type = RW; }
  FSAL { Name = VFS; }
}
EOF
}

exported() {
  local export_dir=$1
  showmount --no-headers -e 127.0.0.1 2>/dev/null | awk '{ print $1 }' | grep -qxF -- "$export_dir"
}

cmd_start() {
  local export_dir=${1:-}
  [ -n "$export_dir" ] || die 'usage: nfs-server.sh start EXPORT_DIR'
  [ -d "$export_dir" ] || die "export directory $export_dir does not exist"
  export_dir=$(cd "$export_dir" && pwd -P)
  case $export_dir in *'"'* | *$'\n'*) die "export directory $export_dir contains a quote or newline" ;; esac
  mkdir -p "$STATE_DIR"

  if pid=$(running_pid); then
    if [ "$(cat "$EXPORT_FILE" 2>/dev/null)" = "$export_dir" ] && exported "$export_dir"; then
      log "already running (pid $pid), exporting $export_dir"
      printf '%s\n' "$pid"
      return 0
    fi
    log "running with another export; restarting"
    cmd_stop
  fi

  ensure_packages
  stop_orphans
  ensure_rpcbind
  # Ganesha's fs recovery backend keeps client state here; it must exist.
  mkdir -p /var/lib/nfs/ganesha /run/ganesha
  write_config "$export_dir"
  printf '%s\n' "$export_dir" >"$EXPORT_FILE"
  rm -f "$PID_FILE"
  : >"$LOG_FILE"
  ganesha.nfsd -L "$LOG_FILE" -f "$CONF_FILE" -p "$PID_FILE"

  local deadline=$((SECONDS + START_TIMEOUT_S))
  while [ $SECONDS -lt $deadline ]; do
    if pid=$(running_pid) && exported "$export_dir"; then
      log "ganesha running (pid $pid), exporting $export_dir on 127.0.0.1"
      printf '%s\n' "$pid"
      return 0
    fi
    sleep 0.2
  done
  log "ganesha did not export $export_dir within ${START_TIMEOUT_S}s; last log lines:"
  tail -n 20 "$LOG_FILE" >&2 || true
  cmd_stop || true
  exit 1
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    stop_orphans
    log 'not running'
    return 0
  fi
  # A stopped (SIGSTOP) ganesha must be continued to act on SIGTERM.
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then
    log "ganesha (pid $pid) ignored SIGTERM for 10s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    printf '%s\n' "$pid"
    return 0
  fi
  return 1
}

case ${1:-} in
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  pid) cmd_status || true ;;
  *)
    echo 'usage: nfs-server.sh start EXPORT_DIR | stop | status | pid' >&2
    exit 2
    ;;
esac
