#!/usr/bin/env bash
# Does the interpenetration loss separate people on the very images it trains on?
# A scratch workspace whose training set is 32 crowded images (4-8 people, cluster
# layout); the committed baseline fine-tuned there 150 steps (about 9 passes) as L_P
# alone and as the control, per training seed; each model, and the baseline, evaluated on
# those same 32 images (linked as the benchmark synth_crowd). Then descent.py.
#   bash docs/probes/collision_in_sample/run.sh SCRATCH 0 1 2
set -euo pipefail
scratch=$(realpath -m "$1"); shift
repo=$(git rev-parse --show-toplevel)
python=$repo/.venv/bin/python
export PYTHONPATH=$repo
for seed in "$@"; do
  work=$scratch/seed$seed
  mkdir -p "$work/data/shards/test" "$work/models"
  cd "$work"  # its own line: set -e ignores a failure inside an && list
  $python - "$repo/params.yaml" "$seed" <<'PY'
import sys, yaml
params = yaml.safe_load(open(sys.argv[1]))
params["prepare"]["synth_train"].update(size=32, people=[4, 8], layouts=["cluster"])
params["seed"] = int(sys.argv[2])
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
  ln -sfn "$repo/data/body_model" data/body_model
  ln -sfn "$repo/data/check.json" data/check.json
  ln -sfn "$repo/models/baseline" models/baseline
  # the same 32 images for every seed: drawn once, with the seed-0 workspace's params
  if [ "$seed" = "$1" ]; then
    $python -m stages.prepare --dataset synth_train --out data/shards/train/synth_train
    first=$work
  else
    ln -sfn "$first/data/shards/train" data/shards/train
  fi
  ln -sfn "$work/data/shards/train/synth_train" data/shards/test/synth_crowd
  if [ "$seed" = "$1" ]; then
    $python -m stages.evaluate --model baseline --benchmark synth_crowd
  fi
  for variant in no_depth no_scene; do
    $python -m stages.train --phase finetune --variant $variant
    $python -m stages.evaluate --model $variant --benchmark synth_crowd
  done
done
cd "$scratch/seed$1"
$python "$repo/docs/probes/collision_in_sample/descent.py"
$python "$repo/docs/probes/collision_in_sample/descent.py" --head
