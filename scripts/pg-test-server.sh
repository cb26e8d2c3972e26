#!/usr/bin/env bash
# A PostgreSQL server for the tests, everything under DIR: its data folder, socket, log and
# port, on 127.0.0.1 only, with trust authentication (nothing but loopback can reach it).
#
#   scripts/pg-test-server.sh install      installs postgresql (apt) when missing
#   scripts/pg-test-server.sh start DIR    installs when missing, initdb, starts, waits for it
#   scripts/pg-test-server.sh stop DIR     stops the server (fast shutdown)
#
# After `start`, DIR/url holds the server's URL (postgres://postgres@127.0.0.1:PORT/postgres).
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (the
# package creates it), and DIR is handed to that user.
set -euo pipefail

die() {
    echo "pg-test-server: $*" >&2
    exit 1
}

bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

install() {
    bindir >/dev/null && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "PostgreSQL is missing (package postgresql) and apt-get is not available to install it"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            die "PostgreSQL is missing (package postgresql) and installing it needs root"
        fi
    fi
    echo "pg-test-server: installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q postgresql >&2 ||
        { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q postgresql >&2; } ||
        die "apt-get could not install postgresql"
    bindir >/dev/null || die "installed postgresql, but initdb and pg_ctl are still missing"
}

# A TCP port nothing listens on (a connection to it is refused).
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no free port"
}

# Runs a PostgreSQL binary as the user that owns the data (root may not).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the user postgres (the postgresql package creates it)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1 bin port
    install
    bin=$(bindir) || die "initdb and pg_ctl not found"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/data/postmaster.pid" ] && die "$dir already holds a running server (stop it first)"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        # The postgres user must reach DIR through its parents (a tempdir under /tmp is 0700).
        chmod 0755 "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 \
            >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed in $dir/data"; }
    fi
    port=$(free_port)
    # fsync off: a test server's data is thrown away; it makes the tests' commits cheap.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null ||
        { tail -n 20 "$dir/server.log" >&2; die "the server did not start (log: $dir/server.log)"; }
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    cat "$dir/url"
}

stop() {
    local dir=$1 bin
    [ -f "$dir/data/postmaster.pid" ] || return 0
    bin=$(bindir) || die "pg_ctl not found"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

case "${1:-}" in
    install) install ;;
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
