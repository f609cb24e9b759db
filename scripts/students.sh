#!/usr/bin/env bash
# Set-up (if needed), build, then every SST-2 student of the README and where each sits, in one command:
#   1. the teacher                    (kd train-teacher, configs/sst2_teacher.yaml           → runs/sst2-teacher)
#   2. the BiLSTM student             (kd distill, configs/sst2_distill.yaml                 → runs/sst2-distill)
#   3. the TextCNN student            (the same recipe, student section replaced             → runs/sst2-distill-textcnn)
#   4. the 3-layer Transformer        (kd distill, configs/sst2_bert_distill.yaml            → runs/sst2-distill-bert)
#   5. the 2-layer Transformer        (kd distill, configs/sst2_bert_small_distill.yaml      → runs/sst2-distill-bert-small)
#   6. the ablation of its knowledge  (kd ablate, configs/sst2_bert_small_ablation.yaml      → runs/sst2-ablation)
#   7. all of them side by side       (kd compare, against the BiLSTM                        → runs/sst2-students)
# Each distillation has its no-teacher baseline and 3 seeds (the configs say so). Stages 1-6 are kept when
# they finished before and continued when interrupted (scripts/stages.sh; KD_FRESH=1 starts over); the
# comparison is measured anew every time, all models in one process. On the 2-core machine the whole is
# about 12 hours, most of it the Transformer students (docs/results.md gives each stage's time).
# Extra arguments go to every kd command that trains (e.g. --threads 2 --no-progress).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stages.sh"

# The TextCNN is the BiLSTM's recipe (data, soft labels, augmentation, budget) with another student.
TEXTCNN='student={type: textcnn, embedding_dim: 128, init_embeddings: teacher_pca, kernel_sizes: [2, 3, 4], filters: 128, dropout: 0.2}'

stage "teacher fine-tuning" runs/sst2-teacher train-teacher configs/sst2_teacher.yaml
stage "BiLSTM student" runs/sst2-distill distill configs/sst2_distill.yaml
stage "TextCNN student" runs/sst2-distill-textcnn distill configs/sst2_distill.yaml \
      --run-dir runs/sst2-distill-textcnn --set "$TEXTCNN"
stage "3-layer Transformer student" runs/sst2-distill-bert distill configs/sst2_bert_distill.yaml
stage "2-layer Transformer student" runs/sst2-distill-bert-small distill configs/sst2_bert_small_distill.yaml
stage "knowledge ablation" runs/sst2-ablation ablate configs/sst2_bert_small_ablation.yaml

"$BUILD/kd" compare --runs runs/sst2-distill runs/sst2-distill-textcnn runs/sst2-distill-bert \
            runs/sst2-distill-bert-small --reference runs/sst2-distill --out runs/sst2-students
echo "[students] all stages: $(( $(date +%s) - start )) s on $(nproc) cores"
echo "[students] chart: runs/sst2-students/accuracy_vs_latency.svg (.png), table: runs/sst2-students/compare.md"
echo "[students] ablation: runs/sst2-ablation/ablation.md; each student's report: runs/<run>/report.md"
