#!/usr/bin/env bash
# Install what tests/slurm/cluster.sh needs (Debian/Ubuntu, as root): SLURM's controller, node daemon and
# client commands, and munge. About 20 s; exits 0 without doing anything when they are already there.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "tests/slurm/install.sh: needs root and apt-get" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
