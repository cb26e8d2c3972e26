#!/usr/bin/env bash
# A single-node Slurm cluster for the tests, everything under DIR: its own munged (socket,
# key, pid and log files), slurmctld and slurmd on free ports, state, spool, pid and log files.
#
#   scripts/slurm-test-cluster.sh install      installs slurmctld slurmd slurm-client munge (apt)
#   scripts/slurm-test-cluster.sh start DIR    installs when missing, starts, waits for `idle`
#   scripts/slurm-test-cluster.sh stop DIR     stops the daemons by their pid files
#
# After `start`, DIR/slurm.conf is the cluster's configuration: clients need
# SLURM_CONF=DIR/slurm.conf (DIR/env says so, for `. DIR/env`). It runs as root (as a container
# runs), with ProctrackType=proctrack/linuxproc and TaskPlugin=task/none: no cgroups or systemd.
set -euo pipefail

PACKAGES="slurmctld slurmd slurm-client munge"

die() {
    echo "slurm-test-cluster: $*" >&2
    exit 1
}

have_all() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1
}

install() {
    have_all && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "Slurm is missing ($PACKAGES) and apt-get is not available to install it"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            die "Slurm is missing ($PACKAGES) and installing it needs root"
        fi
    fi
    echo "slurm-test-cluster: installing $PACKAGES" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The packages' postinst scripts try to start services; there is no init system here.
    $sudo apt-get install -y -q $PACKAGES >&2 ||
        { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q $PACKAGES >&2; } ||
        die "apt-get could not install $PACKAGES"
    have_all || die "installed $PACKAGES, but slurmctld, slurmd, sbatch or munged is still missing"
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

show_logs() {
    local dir=$1 f
    for f in "$dir"/slurmctld.log "$dir"/slurmd.log "$(cat "$dir/munge-dir" 2>/dev/null)/log"; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    return 0
}

start() {
    local dir=$1
    [ "$(id -u)" -eq 0 ] || die "the test cluster runs its daemons as root (SlurmUser=root); run as root"
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/slurmctld.pid" ] && die "$dir already holds a cluster (stop it first)"
    mkdir -p "$dir/state" "$dir/spool"

    # munged insists that every folder above its socket be executable by all: a folder of its
    # own under /tmp, whatever the permissions of DIR's parents.
    local munge
    munge=$(mktemp -d /tmp/towerlab-munge.XXXXXX)
    chmod 0711 "$munge"
    echo "$munge" >"$dir/munge-dir"
    cp /etc/munge/munge.key "$munge/key" 2>/dev/null ||
        dd if=/dev/urandom of="$munge/key" bs=1024 count=1 status=none
    chmod 0400 "$munge/key"
    munged --socket="$munge/sock" --key-file="$munge/key" --pid-file="$munge/pid" \
        --log-file="$munge/log" --seed-file="$munge/seed" ||
        { show_logs "$dir"; die "munged did not start"; }

    local host ctld_port d_port
    host=$(hostname -s)
    ctld_port=$(free_port)
    d_port=$(free_port)
    while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
    cat >"$dir/slurm.conf" <<EOF
ClusterName=towerlab-test
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge/sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# Finished jobs stay visible to scontrol for an hour (there is no accounting daemon).
MinJobAge=3600
# A graceful stop (checkpoint, then exit) gets this long between SIGTERM and SIGKILL.
KillWait=30
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF" || { show_logs "$dir"; die "slurmctld did not start"; }
    slurmd -f "$SLURM_CONF" || { show_logs "$dir"; die "slurmd did not start"; }

    local state=""
    for _ in $(seq 1 120); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1 || true)
        if [ "$state" = "idle" ]; then
            echo "slurm-test-cluster: node $host idle (slurmctld port $ctld_port, slurmd port $d_port); SLURM_CONF=$SLURM_CONF" >&2
            return 0
        fi
        sleep 0.5
    done
    show_logs "$dir"
    stop "$dir"
    die "the node did not become idle within 60 s (last state: ${state:-none})"
}

# Sends SIGTERM to the process in a pid file and waits (up to 10 s) for it to go.
stop_pid() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$file"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    # Jobs still running (a test that failed half-way) would outlive slurmd: cancel them and
    # give them KillWait to stop first.
    if [ -f "$dir/slurmctld.pid" ] && [ -f "$dir/slurm.conf" ]; then
        export SLURM_CONF="$dir/slurm.conf"
        if [ -n "$(squeue -h -t running,pending,completing -o %i 2>/dev/null | head -n 1)" ]; then
            scancel --partition=debug 2>/dev/null || true
            for _ in $(seq 1 70); do
                [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null | head -n 1)" ] && break
                sleep 0.5
            done
        fi
    fi
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    if [ -f "$dir/munge-dir" ]; then
        local munge
        munge=$(cat "$dir/munge-dir")
        stop_pid "$munge/pid"
        rm -rf "$munge"
        rm -f "$dir/munge-dir"
    fi
}

case "${1:-}" in
    install) install ;;
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
