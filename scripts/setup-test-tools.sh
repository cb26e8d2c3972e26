#!/usr/bin/env sh
# Tools the test suite drives, installed only when missing and we are allowed to (root or
# passwordless sudo): tmux (the TUI's end-to-end test runs the binary inside it) and a
# single-node Slurm cluster's daemons and clients (the Slurm executor's tests start one with
# scripts/slurm-test-cluster.sh), and a PostgreSQL server (the store's tests run against both
# backends on a server scripts/pg-test-server.sh starts). The tests that need a missing tool
# fail, naming it.
set -eu

missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v slurmctld >/dev/null 2>&1 || missing="$missing slurmctld"
command -v slurmd >/dev/null 2>&1 || missing="$missing slurmd"
command -v sbatch >/dev/null 2>&1 || missing="$missing slurm-client"
command -v munged >/dev/null 2>&1 || missing="$missing munge"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 ||
    missing="$missing postgresql"

if [ -z "$missing" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-tools: missing:$missing, and apt-get is not available; the tests that drive them will fail until they are installed" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "setup-test-tools: missing:$missing, and installing needs root; the tests that drive them will fail until they are installed" >&2
    exit 0
fi
echo "setup-test-tools: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get install -y -q $missing || { $SUDO apt-get update -q && $SUDO apt-get install -y -q $missing; }
