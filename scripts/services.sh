#!/usr/bin/env bash
# Installs (on a fresh Debian machine) and starts the real services the tests talk to.
# Idempotent: a service that is already up is left alone. No systemd needed.
#   bash scripts/services.sh            # everything the test suite needs
#   bash scripts/services.sh postgres   # just one
#   bash scripts/services.sh libvirt sshd
#
# libvirt: libvirtd with the QEMU driver (qemu:///system; KVM when /dev/kvm works, else TCG),
#   plus the tools VM creation uses (qemu-img, xorriso, cloud-localds), and the `default` NAT
#   network (virbr0, DHCP on 192.168.122.0/24) VMs get their addresses from.
# sshd: a test sshd of its own on 127.0.0.1 (nothing in /etc/ssh is changed), logging in as
#   root with a test key pair. Everything lives in $QUANTIX_TEST_SSH_DIR, default
#   /var/lib/quantix-test/ssh: id_ed25519 (client key), ssh_host_ed25519_key(.pub) (its only
#   host key), sshd_config, sshd.pid, sshd.log. Port: $QUANTIX_TEST_SSH_PORT, default 2222.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL: the test role `quantix` (password `quantix`, CREATEDB) works with trust and with
# Debian's default scram auth alike; each test suite creates and drops its own database.
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log 'installing postgresql'
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" { found = 1 } END { exit !found }'; then
    log "starting postgresql $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || { log 'postgresql did not come up on 127.0.0.1:5432'; return 1; }
  as_root su postgres -c "psql -q -v ON_ERROR_STOP=1 -d postgres" >/dev/null <<'SQL'
do $$ begin
  if not exists (select from pg_roles where rolname = 'quantix') then
    create role quantix login createdb password 'quantix';
  end if;
end $$;
SQL
  log 'postgresql ready'
}

# libvirt with the QEMU driver, started by hand (no systemd; libvirt-daemon-system is not
# installed because it pulls a systemd upgrade).
LIBVIRT_URI=qemu:///system
ensure_libvirt() {
  if ! command -v libvirtd >/dev/null 2>&1 || ! command -v virsh >/dev/null 2>&1 ||
    ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-img >/dev/null 2>&1 ||
    ! command -v xorriso >/dev/null 2>&1 || ! command -v cloud-localds >/dev/null 2>&1 ||
    ! command -v genisoimage >/dev/null 2>&1 || [ ! -d /usr/share/OVMF ]; then
    log 'installing libvirt, qemu, UEFI firmware and image tools'
    apt_install libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils \
      ovmf xorriso genisoimage cloud-image-utils
  fi
  # The QEMU driver refuses to load without this user.
  if ! getent group libvirt-qemu >/dev/null; then as_root groupadd -r libvirt-qemu; fi
  if ! getent passwd libvirt-qemu >/dev/null; then
    as_root useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  fi
  # /dev/kvm is root-only here: QEMU runs as root.
  local conf=/etc/libvirt/qemu.conf
  as_root mkdir -p /etc/libvirt
  as_root touch "$conf"
  if ! grep -qx 'user = "root"' "$conf" || ! grep -qx 'group = "root"' "$conf"; then
    log "setting QEMU's user and group to root in $conf"
    as_root sed -i -e '/^[[:space:]]*user[[:space:]]*=/d' -e '/^[[:space:]]*group[[:space:]]*=/d' "$conf"
    printf 'user = "root"\ngroup = "root"\n' | as_root tee -a "$conf" >/dev/null
    # A running libvirtd read the old setting: restart it below.
    if [ -s /run/libvirtd.pid ]; then
      as_root kill "$(cat /run/libvirtd.pid)" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -e "/proc/$(cat /run/libvirtd.pid 2>/dev/null || echo 0)" ] || break; sleep 0.1; done
    fi
  fi
  as_root mkdir -p /var/log/libvirt/qemu /var/lib/libvirt /run/libvirt
  # virtlogd first: a domain does not start without its socket.
  if ! pid_alive /run/virtlogd.pid virtlogd; then
    log 'starting virtlogd'
    as_root virtlogd -d
  fi
  if ! virsh -c "$LIBVIRT_URI" version >/dev/null 2>&1; then
    if ! pid_alive /run/libvirtd.pid libvirtd; then
      log 'starting libvirtd'
      as_root libvirtd -d
    fi
    for _ in $(seq 1 100); do
      virsh -c "$LIBVIRT_URI" version >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  virsh -c "$LIBVIRT_URI" list --all --name >/dev/null || { log "libvirtd does not answer on $LIBVIRT_URI"; return 1; }
  log "libvirt ready ($LIBVIRT_URI, $(kvm_usable && echo KVM || echo 'TCG: /dev/kvm is not usable'))"
}

# libvirt's `default` NAT network (virbr0, 192.168.122.0/24 with DHCP), as Debian's
# libvirt-daemon-system would define it (that package is not installed: it pulls a systemd
# upgrade). Defined when absent, started when stopped, marked autostart; a network an operator
# defined under that name is left as it is. Starting it needs dnsmasq and iptables.
ensure_default_network() {
  if ! command -v dnsmasq >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
    log 'installing dnsmasq-base and iptables (libvirt NAT networks)'
    apt_install dnsmasq-base iptables
  fi
  if ! virsh -c "$LIBVIRT_URI" net-info default >/dev/null 2>&1; then
    log "defining libvirt's default NAT network"
    local xml
    xml=$(mktemp)
    cat >"$xml" <<'EOF'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
EOF
    virsh -c "$LIBVIRT_URI" net-define "$xml" >/dev/null || { rm -f "$xml"; return 1; }
    rm -f "$xml"
  fi
  if ! default_network_active; then
    log "starting libvirt's default network"
    # Another caller may start it at the same moment: what counts is that it is active after.
    virsh -c "$LIBVIRT_URI" net-start default >/dev/null 2>&1 || default_network_active ||
      { log "libvirt's default network does not start (virsh net-start default)"; return 1; }
  fi
  virsh -c "$LIBVIRT_URI" net-autostart default >/dev/null
  log 'libvirt network default active'
}

# Whether libvirt's `default` network is started. Not `grep -q`: it would stop reading at the
# match, virsh would die of SIGPIPE on its next line, and pipefail would make a yes a no.
default_network_active() {
  virsh -c "$LIBVIRT_URI" net-list --name | grep -x default >/dev/null
}

# True when the process named in PIDFILE is alive and is COMM.
pid_alive() {
  local file=$1 comm=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]
}

kvm_usable() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# A test sshd of its own on loopback, for the SSH runner's integration tests and benches.
SSH_DIR=${QUANTIX_TEST_SSH_DIR:-/var/lib/quantix-test/ssh}
SSH_PORT=${QUANTIX_TEST_SSH_PORT:-2222}
ensure_sshd() {
  if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
    log 'installing openssh-server'
    apt_install openssh-server openssh-client
  fi
  as_root mkdir -p "$SSH_DIR" /run/sshd
  as_root chmod 700 "$SSH_DIR"
  [ -s "$SSH_DIR/ssh_host_ed25519_key" ] ||
    as_root ssh-keygen -q -t ed25519 -N '' -C quantix-test-host -f "$SSH_DIR/ssh_host_ed25519_key"
  [ -s "$SSH_DIR/id_ed25519" ] || as_root ssh-keygen -q -t ed25519 -N '' -C quantix-test -f "$SSH_DIR/id_ed25519"
  as_root cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"
  local conf=$SSH_DIR/sshd_config
  as_root tee "$conf.new" >/dev/null <<EOF
# Written by scripts/services.sh: a loopback-only sshd for tests.
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile $SSH_DIR/authorized_keys
PidFile $SSH_DIR/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
# bash sources ~/.bashrc for commands run over SSH when SHLVL is below 2; a heavy root .bashrc
# (pyenv and the like on dev machines) would then add ~250 ms to every command.
SetEnv SHLVL=1
# Benches open many short connections (virsh qemu+ssh) one after another.
MaxStartups 100:30:200
EOF
  if ! cmp -s "$conf.new" "$conf"; then
    as_root mv "$conf.new" "$conf"
    if pid_alive "$SSH_DIR/sshd.pid" sshd; then
      log 'sshd config changed; restarting the test sshd'
      as_root kill "$(cat "$SSH_DIR/sshd.pid")"
      for _ in $(seq 1 50); do pid_alive "$SSH_DIR/sshd.pid" sshd || break; sleep 0.1; done
    fi
  else
    as_root rm -f "$conf.new"
  fi
  if ! pid_alive "$SSH_DIR/sshd.pid" sshd; then
    as_root /usr/sbin/sshd -t -f "$conf"
    log "starting the test sshd on 127.0.0.1:$SSH_PORT"
    as_root /usr/sbin/sshd -f "$conf" -E "$SSH_DIR/sshd.log"
  fi
  for _ in $(seq 1 50); do
    ssh_works && break
    sleep 0.1
  done
  ssh_works || { log "the test sshd does not accept the test key on 127.0.0.1:$SSH_PORT (see $SSH_DIR/sshd.log)"; return 1; }
  log "sshd ready on 127.0.0.1:$SSH_PORT (key $SSH_DIR/id_ed25519)"
}

ssh_works() {
  ssh -q -i "$SSH_DIR/id_ed25519" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 root@127.0.0.1 true 2>/dev/null
}

main() {
  local wanted=("$@")
  [ ${#wanted[@]} -gt 0 ] || wanted=(postgres libvirt sshd)
  for service in "${wanted[@]}"; do
    case "$service" in
      postgres) ensure_postgres ;;
      libvirt) ensure_libvirt && ensure_default_network ;;
      sshd) ensure_sshd ;;
      *) log "unknown service: $service"; return 2 ;;
    esac
  done
}

main "$@"
