#!/usr/bin/env bash
# Usage: [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=""] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [args]
# GPUS is the number of tasks (processes); on CPU-only nodes each task is one gloo process.
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(dirname "$0")/.."
GRES=""
if [ "${NO_GPU:-0}" = "0" ]; then GRES="--gres=gpu:${GPUS_PER_NODE}"; fi
# torchrun sets OMP_NUM_THREADS=1, srun sets nothing: without CPU binding every task would start one
# thread per core of the node and the tasks would oversubscribe it.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK}

PYTHONPATH="$ROOT":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    ${GRES} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$ROOT/tools/train.py" ${CONFIG} --launcher="slurm" "${@:4}"
