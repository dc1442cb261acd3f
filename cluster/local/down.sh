#!/usr/bin/env bash
# Stop the single-node SLURM cluster that cluster/local/up.sh started: cancel its jobs, then stop exactly the
# PIDs recorded in $MADVAE_SLURM_STATE/pids (default /tmp/madvae-slurm), newest first; never by process name.
# A daemon up.sh did not start (e.g. a munged it reused) is left alone. Safe to run twice.
set -uo pipefail

STATE=${MADVAE_SLURM_STATE:-/tmp/madvae-slurm}
CONF=$STATE/slurm.conf
PIDS=$STATE/pids
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF

say() { echo "down.sh: $*"; }
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

if [ ! -s "$PIDS" ]; then
  say "nothing to stop (no $PIDS)"
else
  declare -A alive=()
  while read -r name pid st; do
    [ -n "${pid:-}" ] && [ "$(starttime "$pid")" = "$st" ] && alive[$name]=$pid
  done <"$PIDS"

  # Cancel running jobs first so their slurmstepd processes exit with them.
  if [ -n "${alive[slurmctld]:-}" ] && [ -n "${alive[slurmd]:-}" ]; then
    jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 40); do
        [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi

  for name in slurmd slurmctld munged; do
    pid=${alive[$name]:-}
    [ -n "$pid" ] || continue
    st=$(starttime "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do
      [ "$(starttime "$pid")" = "$st" ] || break
      sleep 0.25
    done
    if [ "$(starttime "$pid")" = "$st" ]; then
      say "$name ($pid) ignored SIGTERM for 15 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$PIDS"
  say "stopped ${!alive[*]}"
fi

# The /etc/slurm/slurm.conf symlink up.sh made (only if it points at our slurm.conf).
if [ -L "$ETC_CONF" ] && [ "$(readlink -f "$ETC_CONF")" = "$(readlink -f "$CONF")" ]; then
  rm -f "$ETC_CONF"
fi
exit 0
