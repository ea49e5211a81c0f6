#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this machine, for the tests and for trying
# sweeps on SLURM: slurmctld, slurmd, munge, slurmdbd with MariaDB.
#
#   sudo scripts/slurm_cluster.sh up      # install (Debian packages) if needed, start, wait until each answers
#   sudo scripts/slurm_cluster.sh down    # cancel every job, stop every daemon by its pid
#   scripts/slurm_cluster.sh status       # exit 0 when the cluster takes jobs
#
# Both are idempotent. State, logs, pid files and the database live under one directory,
# $MNIST_EXP_SLURM_DIR (default /tmp/mnist_exp_slurm); the configs go to /etc/slurm (where the
# SLURM commands look). The partition is "debug"; the scheduler runs every 5 s (sched_interval).
# Exit codes: 0 done, 2 cannot (not root, no apt-get, a daemon that does not come up).
set -euo pipefail

BASE=${MNIST_EXP_SLURM_DIR:-/tmp/mnist_exp_slurm}
DB_PORT=${MNIST_EXP_SLURM_DB_PORT:-13306}
DB_PASS=mnist_exp_slurm
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

say() { echo "slurm_cluster: $*"; }
die() { echo "slurm_cluster: error: $*" >&2; exit 2; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds, at most SECONDS.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what did not answer within ${limit} s (logs in $BASE/log)"
    sleep 0.5
  done
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait up to 20 s, then KILL
  local file=$1 name=$2
  running "$file" || { rm -f "$file"; return 0; }
  local pid; pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { kill -9 "$pid" 2>/dev/null || true; say "killed $name"; }
  rm -f "$file"
}

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null \
    && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get to install it"
  say "installing $PACKAGES"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null \
    || die "apt-get install $PACKAGES failed"
}

start_munge() {
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  if ! (munge -n | unmunge) >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 munged sh -c 'munge -n | unmunge'
  fi
}

start_mariadb() {
  mkdir -p "$BASE/db" "$BASE/mysql"
  chown -R mysql:mysql "$BASE/db" "$BASE/mysql"
  if running "$BASE/mysql/mariadb.pid"; then return 0; fi
  [ -d "$BASE/db/mysql" ] || mariadb-install-db --user=mysql --datadir="$BASE/db" >"$BASE/log/mariadb-install.log" 2>&1
  runuser -u mysql -- mariadbd --datadir="$BASE/db" --socket="$BASE/mysql/mysqld.sock" \
    --pid-file="$BASE/mysql/mariadb.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --log-error="$BASE/log/mariadb.log" >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb --socket="$BASE/mysql/mysqld.sock" -e "select 1"
  mariadb --socket="$BASE/mysql/mysqld.sock" -e "
    create database if not exists slurm_acct_db;
    create user if not exists 'slurm'@'127.0.0.1' identified by '$DB_PASS';
    grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';"
}

write_configs() {
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 3 / 4)}' /proc/meminfo)
  mkdir -p /etc/slurm "$BASE"/{state,spool,run}
  cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$BASE/run/slurmdbd.pid
LogFile=$BASE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  cat >/etc/slurm/slurm.conf <<EOF
ClusterName=mnist
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
ReturnToService=2
SchedulerParameters=sched_interval=5
KillWait=5
MpiDefault=none
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
  install_packages
  mkdir -p "$BASE/log"
  start_munge
  start_mariadb
  write_configs
  if ! running "$BASE/run/slurmdbd.pid"; then
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
  fi
  sacctmgr -i add cluster mnist >/dev/null 2>&1 || true
  if ! running "$BASE/run/slurmctld.pid"; then
    slurmctld -c
    wait_for 60 slurmctld sh -c 'scontrol ping | grep -q UP'
  fi
  if ! running "$BASE/run/slurmd.pid"; then
    slurmd -N localhost
  fi
  wait_for 60 "slurmd (node idle)" sh -c 'sinfo -h -o %T | grep -qx idle'
  say "up: partition debug, $(nproc) CPUs; state and logs in $BASE"
}

down() {
  if command -v squeue >/dev/null && [ -f /etc/slurm/slurm.conf ]; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  fi
  stop_pid "$BASE/run/slurmd.pid" slurmd
  stop_pid "$BASE/run/slurmctld.pid" slurmctld
  stop_pid "$BASE/run/slurmdbd.pid" slurmdbd
  stop_pid "$BASE/mysql/mariadb.pid" mariadbd
  if [ -f /run/munge/munged.pid ]; then stop_pid /run/munge/munged.pid munged; fi
  say "down"
}

status() { sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; }

case "${1:-}" in
  up) [ "$(id -u)" = 0 ] || die "must run as root (apt-get, the munge key, /etc/slurm, slurmd)"; up ;;
  down) [ "$(id -u)" = 0 ] || die "must run as root"; down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
