#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks of the delivery history.
#
#   scripts/postgres.sh start DIR [PORT]   install PostgreSQL (Debian's package) when missing,
#                                          create a cluster in DIR, start it on 127.0.0.1:PORT
#                                          (default 55432) and print its DSN on stdout
#   scripts/postgres.sh stop DIR           stop the server of DIR (DIR is left for inspection)
#
# PostgreSQL refuses to run as root: run as root, the server runs as the 'postgres' user that the
# package creates (DIR is handed to it). Authentication is 'trust' on 127.0.0.1 only: this is a
# test server, never one for data that matters.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR" >&2
  exit 2
}

find_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then
      echo "$dir"
    fi
  done | sort -V | tail -n 1
}

install_postgres() {
  if [ -n "$(find_bindir)" ]; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and installing it needs root: run" \
      "'apt-get install postgresql' as root, then this script again." >&2
    exit 1
  fi
  echo "installing PostgreSQL (Debian's package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  if [ -z "$(find_bindir)" ]; then
    echo "apt-get installed postgresql but no initdb was found under /usr/lib/postgresql" >&2
    exit 1
  fi
}

# Runs a command as the server's user: 'postgres' when we are root, ourselves otherwise.
as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir="$1" port="${2:-55432}"
  install_postgres
  local bin
  bin="$(find_bindir)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    # The server user must be able to reach DIR through its parents (pytest's tmp dirs are 0700).
    local parent="$dir"
    while parent="$(dirname "$parent")" && [ "$parent" != "/" ]; do
      chmod o+x "$parent" 2>/dev/null || true
    done
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_server_user "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
  fi
  as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off" \
    start >&2 || {
    cat "$dir/server.log" >&2
    exit 1
  }
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

stop() {
  local dir="$1"
  local bin
  bin="$(find_bindir)"
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
  fi
}

[ $# -ge 2 ] || usage
case "$1" in
  start) start "$2" "${3:-}" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
