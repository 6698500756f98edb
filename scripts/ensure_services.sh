#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the tests talk to, when they are not already running; on a
# machine without them (as root), install them from the distribution's packages first and prepare
# what the tests expect: PostgreSQL at 127.0.0.1:5432, user postgres without a password, database test.
set -euo pipefail

as_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  as_root || { echo "missing $* and not root: install it with apt-get" >&2; exit 1; }
  echo "installing $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

fresh_cluster=0
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
    fresh_cluster=1
  fi
  version="$(ls /etc/postgresql | sort -V | head -n 1)"
  if [ "$fresh_cluster" = 1 ]; then
    # A new cluster asks host connections for a password; the tests connect without one (as on
    # the project's machines). Only a cluster this script installed is changed.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1\/32|::1\/128)[[:space:]]+)[^[:space:]]+/\1trust/' "$hba"
  fi
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
  | grep 1 >/dev/null; then
  echo "creating the database test"
  createdb -h 127.0.0.1 -U postgres test
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable at 127.0.0.1:6379" >&2; exit 1; }
fi
