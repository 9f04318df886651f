#!/usr/bin/env bash
# Installs (on a fresh Debian machine) and starts the real services the tests talk to.
# Idempotent: a service that is already up is left alone. No systemd needed.
#   bash scripts/services.sh            # everything the test suite needs
#   bash scripts/services.sh postgres   # just one
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

main() {
  local wanted=("$@")
  [ ${#wanted[@]} -gt 0 ] || wanted=(postgres)
  for service in "${wanted[@]}"; do
    case "$service" in
      postgres) ensure_postgres ;;
      *) log "unknown service: $service"; return 2 ;;
    esac
  done
}

main "$@"
