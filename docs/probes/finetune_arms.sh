#!/usr/bin/env bash
# Fine-tune arms on development copies, seed by seed (docs/probes/occlusion_vote and
# docs/probes/collision_weight). Makes development copies of synth_multi and synth_crowd
# (`seed: 1000`) once, then for each training seed k a scratch workspace with `seed: k`
# whose params.yaml gains the arms of ARMS (a YAML file of `losses` entries). Each arm is
# fine-tuned there from the committed baseline and evaluated beside the committed run's
# own models of that seed (MODELS; seed 0: models/, seeds 1-4: replicates/seed<k>/models
# from stages.replicate) and, at seed 0, the baseline. FINETUNE, if set, is a YAML mapping
# merged into the workspaces' train.finetune (the arms' data and schedule).
#
#   MODELS="full no_collision no_scene" bash docs/probes/finetune_arms.sh SCRATCH ARMS 0 1 2 3 4
set -euo pipefail
scratch=$(realpath -m "$1"); arms=$(realpath "$2"); shift 2
repo=$(git rev-parse --show-toplevel)
python=$repo/.venv/bin/python
export PYTHONPATH=$repo
benchmarks="synth_multi synth_crowd"
dev=$scratch/dev
if [ ! -f "$dev/done" ]; then
  mkdir -p "$dev/data"
  cd "$dev"  # its own line: set -e ignores a failure inside an && list
  sed -e 's/^seed: 0$/seed: 1000/' "$repo/params.yaml" > params.yaml
  grep -q '^seed: 1000$' params.yaml
  ln -sfn "$repo/data/body_model" data/body_model
  for b in $benchmarks; do
    $python -m stages.prepare --dataset $b --out data/shards/test/$b
  done
  touch done
fi
names=$($python -c "import sys, yaml; print(' '.join(yaml.safe_load(open(sys.argv[1]))))" "$arms")
for seed in "$@"; do
  work=$scratch/seed$seed
  mkdir -p "$work/data/shards" "$work/models"
  cd "$work"
  $python - "$repo/params.yaml" "$arms" "$seed" <<'PY'
import os, sys, yaml
params = yaml.safe_load(open(sys.argv[1]))
params["train"]["finetune"].update(yaml.safe_load(os.environ.get("FINETUNE") or "{}"))
params["seed"] = int(sys.argv[3])
params["losses"].update(yaml.safe_load(open(sys.argv[2])))
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
  ln -sfn "$repo/data/body_model" data/body_model
  ln -sfn "$repo/data/check.json" data/check.json
  ln -sfn "$repo/data/shards/train" data/shards/train
  ln -sfn "$dev/data/shards/test" data/shards/test
  ln -sfn "$repo/models/baseline" models/baseline
  source_models=$repo/models
  [ "$seed" = 0 ] || source_models=$repo/replicates/seed$seed/models
  for m in $MODELS; do ln -sfn "$source_models/$m" models/$m; done
  for arm in $names; do
    [ -f models/$arm/model.pt ] || $python -m stages.train --phase finetune --variant $arm
  done
  evaluate=$MODELS
  [ "$seed" = 0 ] && evaluate="baseline $evaluate"
  for m in $evaluate $names; do
    [ -f evaluations/$m/synth_crowd.jsonl ] || \
      $python -m stages.evaluate --model $m --benchmark $benchmarks
  done
done
