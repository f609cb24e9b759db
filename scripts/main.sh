#!/usr/bin/env bash
# Set-up (if needed), build, then the main job, the whole classic distillation flow on SST-2:
#   1. fine-tune the pretrained MiniLM teacher   (kd train-teacher, configs/sst2_teacher.yaml → runs/sst2-teacher)
#   2. cache its knowledge, distil BiLSTM students and no-teacher baselines over 3 seeds, and report
#                                                (kd distill, configs/sst2_distill.yaml → runs/sst2-distill)
# A stage that finished is kept; an interrupted one is continued (--resume). KD_FRESH=1 starts over.
# Extra arguments go to both kd commands (e.g. --threads 2 --no-progress).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stages.sh"
stage "teacher fine-tuning" runs/sst2-teacher train-teacher configs/sst2_teacher.yaml
stage "distillation" runs/sst2-distill distill configs/sst2_distill.yaml
echo "[main] all stages: $(( $(date +%s) - start )) s on $(nproc) cores; report: runs/sst2-distill/report.md"
