#!/usr/bin/env bash
# A single-node SLURM on this machine, for tests: munged, slurmctld and slurmd started directly (no systemd).
#
#   tests/slurm/cluster.sh start DIR [GPUS]   write DIR/slurm.conf, start the daemons, wait for the node
#   tests/slurm/cluster.sh stop DIR           stop the daemons this script started in DIR
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (tests/slurm/install.sh installs them).
# The node has the machine's real CPUs and memory (`slurmd -C`), partitions `debug` (default) and `long`,
# GPUS fake GPUs (gres `gpu`, no device: jobs get CUDA_VISIBLE_DEVICES but no CUDA), and no accounting
# database, so `sacct` fails and status queries must use `squeue` (MinJobAge 300 s keeps finished jobs listed).
# Clients find the cluster through SLURM_CONF (`source DIR/env`) or, on this machine, /run/slurm/conf.
# Exit status 3 means SLURM cannot run here (not root, packages missing); the message says why.
set -euo pipefail

usage() { echo "usage: $0 start DIR [GPUS] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
gpus=${3:-1}

stop_daemons() {
    # only the daemons whose pid files this script wrote in $dir
    for name in slurmd slurmctld; do
        if [[ -f $dir/$name.pid ]]; then
            pid=$(cat "$dir/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$dir/$name.pid"
        fi
    done
}

if [[ $action == stop ]]; then
    stop_daemons
    if grep -qs "^ClusterName=hoitest$" /run/slurm/conf/slurm.conf; then rm -rf /run/slurm/conf; fi  # slurmd's copy
    exit 0
fi
[[ $action == start ]] || usage

if [[ $(id -u) -ne 0 ]]; then
    echo "SLURM test cluster: needs root (slurmd runs jobs as their users)" >&2
    exit 3
fi
for tool in munged mungekey slurmctld slurmd sbatch squeue scontrol; do
    if ! command -v "$tool" >/dev/null; then
        echo "SLURM test cluster: '$tool' not found; install the Debian packages slurmctld slurmd slurm-client munge" >&2
        exit 3
    fi
done

# munge: the authentication every SLURM message carries; one key per machine, owned by user munge
if ! id munge >/dev/null 2>&1; then
    echo "SLURM test cluster: no user 'munge' (the munge package creates it)" >&2
    exit 3
fi
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
    runuser -u munge -- munged --force
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! munge -n </dev/null | unmunge >/dev/null 2>&1; then
    echo "SLURM test cluster: munged does not answer (see /var/log/munge/munged.log)" >&2
    exit 3
fi

stop_daemons  # a cluster left over from an earlier run in the same folder
host=$(hostname -s)
node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=...: what this machine really has
mkdir -p "$dir/state" "$dir/spool"
cat >"$dir/slurm.conf" <<EOF
ClusterName=hoitest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=10
InactiveLimit=0
SchedulerParameters=bf_interval=5
SlurmctldParameters=enable_configless
$node Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=ALL MaxTime=INFINITE State=UP
EOF
: >"$dir/gres.conf"
for i in $(seq 0 $((gpus - 1))); do  # one distinct device file per fake GPU (slurmd rejects duplicates)
    ln -sf /dev/null "$dir/fake-gpu$i"
    echo "NodeName=$host Name=gpu File=$dir/fake-gpu$i" >>"$dir/gres.conf"
done
echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"

export SLURM_CONF=$dir/slurm.conf
failed() {
    echo "SLURM test cluster: $1; logs in $dir" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    stop_daemons
    exit 1
}
slurmctld -f "$SLURM_CONF" -i || failed "slurmctld did not start"  # -i: ignore the state of an earlier run
# configless: slurmd fetches the config from slurmctld and links it at /run/slurm/conf, where commands inside
# jobs find it (the executor plugin removes SLURM_CONF from a job's environment before its srun)
slurmd --conf-server "$host" -N "$host" || failed "slurmd did not start"
for _ in $(seq 120); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -n 1 || true)
    if [[ $state == idle ]]; then
        echo "SLURM test cluster up: $node, $gpus fake GPU(s), partitions debug and long; source $dir/env"
        exit 0
    fi
    sleep 0.5
done
failed "node '$host' not idle after 60 s (state '${state:-none}')"
