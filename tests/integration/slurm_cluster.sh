#!/usr/bin/env bash
# Opt-in integration test of tools/slurm_train.sh and tools/slurm_test.sh on a real Slurm cluster.
#
# Starts a one-node cluster on loopback (munged, slurmctld, slurmd; 2 CPUs; everything in a temp dir), then with
# 2 CPU tasks (gloo, --launcher slurm) on tests/helpers/toy_fault_config.py:
#   1. 6 iterations uninterrupted;
#   2. the same, cancelled with scancel at the start of iteration 5 (after iter_4.pth), then resubmitted with
#      --resume: its iter_6.pth must equal run 1's;
#   3. tools/slurm_test.sh on that checkpoint: its metrics must equal single-process tools/test.py's.
# Daemons, jobs and the temp dir are cleaned up on success, failure, Ctrl-C and SIGTERM.
# Needs root. Installs Debian's slurm-wlm and munge with apt-get when they are missing.
# Usage: bash tests/integration/slurm_cluster.sh     (PYTHON defaults to the repository's .venv/bin/python)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CTLD_PORT=${CTLD_PORT:-6917}  # not Slurm's default ports, so a site's own daemons are left alone
SLURMD_PORT=${SLURMD_PORT:-6918}
export MASTER_PORT=${MASTER_PORT:-29650}  # torch.distributed rendezvous of each job (ifa_mmseg.utils.dist)
STEP_TIMEOUT=300
START=$SECONDS

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    echo "installed slurm-wlm and munge in $((SECONDS - START)) s"
fi

TMP=$(mktemp -d /tmp/ifa_slurm.XXXXXX)
DAEMONS=()  # munged, slurmctld, slurmd: stopped in reverse order, munged last (the others need it to shut down)
STEP=
stop() {  # PID: SIGTERM, SIGKILL if it still runs after 20 s, then reap it
    kill "$1" 2>/dev/null
    for _ in $(seq 200); do
        case "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" in '' | Z) break ;; esac  # gone or a zombie
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    local rc=$?
    set +e
    if [ $rc -ne 0 ]; then
        for log in "$TMP"/*.log; do echo "== $log"; tail -n 20 "$log"; done
    fi
    if [ ${#DAEMONS[@]} -eq 3 ]; then
        scancel --partition=ifa
        for _ in $(seq 30); do [ -z "$(squeue -h)" ] && break; sleep 1; done
    fi
    [ -n "$STEP" ] && stop "$STEP"
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop "${DAEMONS[i]}"; done
    rm -rf "$TMP"
    echo "slurm_cluster.sh: $([ $rc -eq 0 ] && echo passed || echo "FAILED ($rc)") in $((SECONDS - START)) s"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts LOG CMD... in the background, output in $TMP/LOG.log; waiting on it with the `wait` builtin (not running
# it in the foreground) lets a signal reach the traps at once.
launch() {
    timeout $STEP_TIMEOUT "${@:2}" >"$TMP/$1.log" 2>&1 &
    STEP=$!
}
finish() {  # waits for the step started by launch; returns its exit status
    local rc=0
    wait "$STEP" || rc=$?
    STEP=
    return $rc
}

# munge: a fresh key and its own socket
mkdir -m 700 "$TMP/munge" "$TMP/state" "$TMP/spool"
dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$TMP/munge/munge.key"
munged --foreground --force --key-file="$TMP/munge/munge.key" --socket="$TMP/munge/socket" \
    --pid-file="$TMP/munge/munged.pid" --seed-file="$TMP/munge/seed" --log-file="$TMP/munged.log" >/dev/null 2>&1 &
DAEMONS+=($!)

NODE=$(hostname -s)
export SLURM_CONF=$TMP/slurm.conf  # read by the daemons and every client (srun, scontrol, scancel, sinfo)
cat > "$SLURM_CONF" <<EOF
ClusterName=ifatest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$TMP/munge/socket
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/slurmctld.log
SlurmdLogFile=$TMP/slurmd.log
# no cgroups: this also runs in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=ifa Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
for _ in $(seq 50); do [ -S "$TMP/munge/socket" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >/dev/null 2>&1 &  # -D: foreground, so $! is its pid
DAEMONS+=($!)
slurmd -D -N "$NODE" -f "$SLURM_CONF" >/dev/null 2>&1 &
DAEMONS+=($!)
for _ in $(seq 60); do
    [ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null)" = idle ] && break
    sleep 1
done
[ "$(sinfo -h -n "$NODE" -o %t)" = idle ] || { echo "node $NODE not idle"; sinfo; exit 1; }
echo "cluster up at $((SECONDS - START)) s"

cd "$TMP"  # mmengine gathers the ranks' test results through a .dist_test/ folder it leaves in the cwd
export PATH=$(dirname "$PYTHON"):$PATH PYTHONWARNINGS=ignore  # the launch scripts call python
export NO_GPU=1 GPUS=2 GPUS_PER_NODE=2 CPUS_PER_TASK=1 PYTHONPATH=$ROOT
CONFIG=$ROOT/tests/helpers/toy_fault_config.py

launch train_ref bash "$ROOT/tools/slurm_train.sh" ifa ifa_ref "$CONFIG" --work-dir "$TMP/ref"
finish
echo "uninterrupted training done at $((SECONDS - START)) s"

IFA_FAULT=hang IFA_FAULT_ITER=4 launch train_cancel bash "$ROOT/tools/slurm_train.sh" ifa ifa_cancel "$CONFIG" \
    --work-dir "$TMP/work"
for _ in $(seq $STEP_TIMEOUT); do
    grep -qs iter_4.pth "$TMP/work/last_checkpoint" && break
    sleep 1
done
grep -q iter_4.pth "$TMP/work/last_checkpoint"
scancel --name=ifa_cancel
if finish; then echo "the cancelled job exited with 0"; exit 1; fi
[ ! -e "$TMP/work/iter_6.pth" ]
launch train_resume bash "$ROOT/tools/slurm_train.sh" ifa ifa_resume "$CONFIG" --work-dir "$TMP/work" --resume
finish
grep -q "Auto resumed from the latest checkpoint $TMP/work/iter_4.pth" "$TMP/train_resume.log"
echo "scancel + --resume done at $((SECONDS - START)) s"

launch test_slurm bash "$ROOT/tools/slurm_test.sh" ifa ifa_test "$ROOT/tests/helpers/toy_config.py" \
    "$TMP/work/iter_6.pth" --work-dir "$TMP/test_slurm"
finish
launch test_one "$PYTHON" "$ROOT/tools/test.py" "$ROOT/tests/helpers/toy_config.py" "$TMP/work/iter_6.pth" \
    --work-dir "$TMP/test_one"
finish
"$PYTHON" - "$TMP" <<'EOF'
import sys

from tests.helpers.launch import logged_metrics, max_weight_difference

tmp = sys.argv[1]
diff = max_weight_difference(f'{tmp}/ref/iter_6.pth', f'{tmp}/work/iter_6.pth')
print(f'iter_6.pth, uninterrupted vs cancelled and resumed: max |difference| {diff}')
slurm, one = logged_metrics(f'{tmp}/test_slurm'), logged_metrics(f'{tmp}/test_one')
print('metrics, slurm_test.sh (2 tasks):', slurm)
print('metrics, test.py (1 process):    ', one)
sys.exit(diff != 0 or slurm != one)
EOF
