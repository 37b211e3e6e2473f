#!/bin/bash
# One training run over several machines with torchrun: run this on every node, with the same MASTER_ADDR
# (node 0's address), NNODES, RUN_ID and arguments, and NODE_RANK = 0 .. NNODES-1.
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 RUN_ID=gpt2m sweeps/slurm/torchrun_node.sh model=gpt2_medium
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=1 RUN_ID=gpt2m sweeps/slurm/torchrun_node.sh model=gpt2_medium
# Lightning sees torchrun's variables (TorchElasticEnvironment) and launches nothing itself; rank zero writes
# the run directory (logs/train/runs/$RUN_ID, on a shared filesystem), its log, config and checkpoints.
set -euo pipefail
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
exec torchrun --nnodes="${NNODES}" --nproc-per-node="${NPROC}" --node-rank="${NODE_RANK}" \
    --master-addr="${MASTER_ADDR}" --master-port="${MASTER_PORT:-29500}" \
    train.py trainer=ddp trainer.num_nodes="${NNODES}" trainer.devices="${NPROC}" \
    hydra.run.dir="logs/train/runs/${RUN_ID}" "$@"
