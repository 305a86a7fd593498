# Shared settings of the .ci/slurm scripts (sourced, not run).
# Everything the cluster writes (pid files, logs, spool, state) lives under one dir, so a second
# start on the same machine finds and replaces what the first left behind.
RNNEXP_SLURM_DIR=${RNNEXP_SLURM_DIR:-/var/tmp/rnnexp-slurm}
PIDS=$RNNEXP_SLURM_DIR/pids  # <daemon>.pid: the PID this project started, one file per daemon
LOGS=$RNNEXP_SLURM_DIR/log
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=${RNNEXP_SLURM_DB_PASS:-rnnexp-ci}  # a throwaway cluster on a CI machine; the db listens on localhost only
# Start order; stop goes the other way.
DAEMONS=(mariadb munged slurmdbd slurmctld slurmd)

say() { echo "[slurm $(date +%H:%M:%S)] $*"; }
die() { echo "[slurm] error: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"; }

# The PID recorded for a daemon, if that process is still alive.
live_pid() {
  local f=$PIDS/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}
