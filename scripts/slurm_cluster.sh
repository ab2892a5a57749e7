#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for `make test-cluster` and for trying hydra/launcher=slurm locally.
#
#   scripts/slurm_cluster.sh start    install what is missing (Debian, root), start the daemons that are not running
#   scripts/slurm_cluster.sh status   say which daemons run and what the partition looks like (exit 1 if down)
#   scripts/slurm_cluster.sh stop     cancel the cluster's jobs and stop the daemons that `start` started
#   scripts/slurm_cluster.sh env      print the export line the SLURM commands need (SLURM_CONF)
#
# Everything lives in $OPTREPRO_SLURM_DIR (default /tmp/optrepro-slurm): configs, state, spool, logs, its own munge
# key and socket, its own MariaDB data. Nothing under /etc is written and the system's munge, MariaDB or SLURM (if
# any) are neither used nor touched: the daemons listen on their own ports ($OPTREPRO_SLURM_PORT, default 6917, and
# the three after it). SLURM's clients find this cluster through SLURM_CONF=$OPTREPRO_SLURM_DIR/slurm.conf.
#
# Accounting runs through slurmdbd and MariaDB because submitit (the Hydra submitit launcher) follows its jobs with
# `sacct`, which answers only with accounting storage: with accounting_storage/none it fails ("Slurm accounting
# storage is disabled"), and a job that dies without writing its result would keep the sweep waiting for ever.
# JobCompType=jobcomp/filetxt does not help: only `sacct -c` reads it, and submitit does not pass -c.
set -euo pipefail

DIR=${OPTREPRO_SLURM_DIR:-/tmp/optrepro-slurm}
PORT=${OPTREPRO_SLURM_PORT:-6917}
CTLD_PORT=$PORT SLURMD_PORT=$((PORT + 1)) DB_PORT=$((PORT + 2)) DBD_PORT=$((PORT + 3))
CLUSTER=optrepro
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
# daemon -> binary (start order; stop goes the other way)
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd)
export SLURM_CONF=$DIR/slurm.conf

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

binary() {
  case $1 in
    munged) echo /usr/sbin/munged ;;
    mariadb) echo /usr/sbin/mariadbd ;;
    *) echo "/usr/sbin/$1" ;;
  esac
}

# pid of a daemon this cluster runs (from its pid file, checked against the process's executable), or nothing
pid_of() {
  local file=$DIR/$1.pid pid exe
  [[ -s $file ]] || return 0
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == "$(readlink -f "$(binary "$1")")" ]] && echo "$pid"
  return 0
}

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing packages ${missing[*]}: install them as root (apt-get install ${missing[*]})"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get (this script knows Debian)"
  say "installing ${missing[*]} (once, about a minute)"
  # the packages' own services stay down: policy-rc.d refuses them while apt runs (no systemd here anyway)
  local policy=/usr/sbin/policy-rc.d placed=
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && placed=1; fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"${TMPDIR:-/tmp}/optrepro-slurm-apt.log" 2>&1 \
    || { [[ -n $placed ]] && rm -f "$policy"; die "apt-get failed: see ${TMPDIR:-/tmp}/optrepro-slurm-apt.log"; }
  [[ -n $placed ]] && rm -f "$policy"
  return 0
}

has_pid() { [[ -n $(pid_of "$1") ]]; }

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_configs() {
  mkdir -p "$DIR"/{state,spool,log}
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)  # MiB, leaving room for the system
  cat >"$DIR/slurm.conf" <<EOF
# written by scripts/slurm_cluster.sh: a one-node test cluster (rewritten at each start)
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$DIR/munge.socket,cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$DIR/munge.socket
# a job that gives no --mem takes a share of the node, not all of it (else jobs would run one at a time)
DefMemPerCPU=$((mem / cpus))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmdbd reads slurmdbd.conf from the folder of SLURM_CONF; it must be private to SlurmUser
  (umask 077 && cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=optrepro
StorageLoc=slurm_acct_db
EOF
  )
  if [[ ! -s $DIR/munge.key ]]; then
    (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge.key")
  fi
}

wait_for() {  # seconds, description, command...
  local seconds=$1 what=$2
  shift 2
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$what did not come up within ${seconds}s (logs in $DIR/log)"
}

start_daemon() {
  local name=$1
  if [[ -n $(pid_of "$name") ]]; then
    return 0
  fi
  case $name in
    munged)
      /usr/sbin/munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge.seed"
      wait_for 10 munged munge --socket="$DIR/munge.socket" -n
      ;;
    mariadb)
      port_taken "$DB_PORT" && die "port $DB_PORT is taken: set OPTREPRO_SLURM_PORT to a free range"
      if [[ ! -d $DIR/db/mysql ]]; then
        mariadb-install-db --no-defaults --datadir="$DIR/db" --user=root --auth-root-authentication-method=socket \
          --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: $DIR/log"
      fi
      (setsid /usr/sbin/mariadbd --no-defaults --datadir="$DIR/db" --user=root --socket="$DIR/mysql.sock" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/mariadb.pid" --skip-log-bin \
        --innodb-buffer-pool-size=64M --log-error="$DIR/log/mariadb.log" </dev/null >/dev/null 2>&1 &)
      wait_for 30 MariaDB mariadb-admin --no-defaults --socket="$DIR/mysql.sock" ping
      mariadb --no-defaults --socket="$DIR/mysql.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' \
        IDENTIFIED BY 'optrepro'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
      ;;
    slurmdbd)
      port_taken "$DBD_PORT" && die "port $DBD_PORT is taken: set OPTREPRO_SLURM_PORT to a free range"
      /usr/sbin/slurmdbd
      wait_for 30 slurmdbd sacctmgr -n list cluster
      ;;
    slurmctld)
      port_taken "$CTLD_PORT" && die "port $CTLD_PORT is taken: set OPTREPRO_SLURM_PORT to a free range"
      /usr/sbin/slurmctld
      wait_for 30 slurmctld scontrol ping
      ;;
    slurmd)
      /usr/sbin/slurmd
      ;;
  esac
  wait_for 10 "$name" has_pid "$name"
  echo "$name" >>"$DIR/started"
  say "started $name (pid $(pid_of "$name"))"
}

node_idle() { sinfo -h -n "$NODE" -o %T | grep -q -E '^(idle|mixed|allocated)'; }
accounting_up() { sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" && sacct -n -X -S now >/dev/null; }

start() {
  install_missing
  local running=1
  for d in "${DAEMONS[@]}"; do [[ -n $(pid_of "$d") ]] || running=0; done
  if ((running)); then
    say "already running ($DIR)"
  else
    [[ $(id -u) == 0 ]] || die "the test cluster runs its daemons as root (SlurmUser=root): run as root"
    write_configs
    for d in "${DAEMONS[@]}"; do start_daemon "$d"; done
  fi
  wait_for 60 "node $NODE" node_idle
  wait_for 60 "accounting (slurmdbd)" accounting_up
  say "up: partition debug on $NODE ($(sinfo -h -o '%c CPUs, %m MB' -n "$NODE"))"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  if [[ ! -s $DIR/started ]]; then
    say "nothing to stop: this script started no daemon in $DIR"
    return 0
  fi
  if [[ -n $(pid_of slurmctld) ]]; then  # the cluster's own jobs: theirs would outlive slurmd otherwise
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.25; done
  fi
  local started pid
  mapfile -t started < <(tac "$DIR/started" | awk '!seen[$0]++')
  for d in "${started[@]}"; do
    pid=$(pid_of "$d")
    [[ -n $pid ]] || continue
    kill "$pid"
    for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { say "$d (pid $pid) did not stop: killing it"; kill -9 "$pid"; }
    say "stopped $d"
  done
  rm -f "$DIR/started"
}

status() {
  local up=1 pid
  for d in "${DAEMONS[@]}"; do
    pid=$(pid_of "$d")
    if [[ -n $pid ]]; then echo "$d: running (pid $pid)"; else echo "$d: not running"; up=0; fi
  done
  if ((up)) && node_idle; then
    sinfo
    echo "export SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  return 1
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
