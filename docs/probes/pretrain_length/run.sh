#!/usr/bin/env bash
# The scratch scripts of this probe (2026-11-28, 607129c's code, the models of eb7670e's
# committed run), merged into one file: their four parts ran one after the other, in
# this order, with the same commands. The scratch workspace /tmp/long_pt held a copy of
# params.yaml, links to the committed training shards, body model and input check, the
# development copies of the test benchmarks (seed 1000, /tmp/dev, made by
# stages.prepare), and copies of the committed run's pretraining checkpoint, its logs,
# and the pretrain and mean-pose models. records/<benchmark>/ was then copied here.
set -euo pipefail
cd /tmp/long_pt
R=/work/main
PY="env PYTHONPATH=$R $R/.venv/bin/python"
evaluate() {  # $1: model folder name, $2: label
  for b in synth_single synth_groups synth_multi; do
    $PY -m stages.evaluate --model $1 --benchmark $b > /dev/null 2>&1
    mkdir -p records/$b && cp evaluations/$b/$1.jsonl records/$b/$2.jsonl
  done
  echo "evaluated $2 $(date +%T)"
}

# 1. The pretraining's learning curve: the committed 1,350-step pretraining resumed from
# its checkpoint (the data stream replayed, so each length equals one run that long).
evaluate mean_pose mean_pose
evaluate pretrain pretrain1350
for iters in 2025 2700 3375 4050; do
  sed -i "s/^  pretrain: {iters: [0-9]*,/  pretrain: {iters: $iters,/" params.yaml
  grep -n "^  pretrain:" params.yaml
  $PY -m stages.train --phase pretrain 2>&1 | grep -v "it/s\]$" | tail -3
  cp models/pretrain/model.pt models_pretrain$iters.pt
  evaluate pretrain pretrain$iters
done

# 2. The committed baseline, then the baseline phase on the 4,050-step pretraining (the
# last one written to models/pretrain/model.pt).
mkdir -p models/baseline && cp $R/models/baseline/model.pt models/baseline/model.pt
evaluate baseline baseline
rm -rf models/baseline checkpoints/baseline logs/baseline
$PY -m stages.train --phase baseline 2>&1 | grep -v "it/s\]$" | tail -3
evaluate baseline baseline_pretrain4050

# 3. The baseline phase on the 2,025- and 2,700-step pretrainings.
for iters in 2025 2700; do
  cp models_pretrain$iters.pt models/pretrain/model.pt
  rm -rf models/baseline checkpoints/baseline logs/baseline
  $PY -m stages.train --phase baseline 2>&1 | grep -v "it/s\]$" | tail -1
  evaluate baseline baseline_pretrain$iters
done

# 4. A second training seed (another scratch workspace, /tmp/long_pt_s1, set up alike
# with `seed: 1` in params.yaml and no checkpoint): pretraining from scratch to 1,350
# steps, the baseline phase on it, then the pretraining resumed to 2,700 and the
# baseline phase again.
cd /tmp/long_pt_s1
for iters in 1350 2700; do
  sed -i "s/^  pretrain: {iters: [0-9]*,/  pretrain: {iters: $iters,/" params.yaml
  $PY -m stages.train --phase pretrain 2>&1 | grep -v "it/s\]$" | tail -1
  cp models/pretrain/model.pt models_pretrain$iters.pt
  rm -rf models/baseline checkpoints/baseline logs/baseline
  $PY -m stages.train --phase baseline 2>&1 | grep -v "it/s\]$" | tail -1
  evaluate baseline baseline_s1_pretrain$iters
done
