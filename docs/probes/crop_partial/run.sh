#!/usr/bin/env bash
# One arm of the crop-fragment probe (output.txt): a scratch workspace that pretrains and
# trains the baseline with params.yaml edited by a sed expression, on the committed
# training shards, and evaluates it on development copies of the test benchmarks
# (`seed: 1000`, prepared beforehand with stages.prepare into $DEV/data/shards/test).
# This is the scratch script the arms ran (/tmp/arm.sh), with its paths made relative to
# the repository and the records copied here; in this form it has not been re-run.
#
#   DEV=/tmp/dev bash docs/probes/crop_partial/run.sh ignore75 \
#     's/^    crop_others: 0.25 /    crop_others: 0.75 /; s/^    crop_partial_others: background /    crop_partial_others: ignore /'
set -euo pipefail
name=$1; expression=$2
repo=$(git rev-parse --show-toplevel)
scratch=/tmp/arm_$name
rm -rf "$scratch"
mkdir -p "$scratch/data/shards"
cd "$scratch"  # its own line: set -e ignores a failure inside an && list
sed -e "$expression" "$repo/params.yaml" > params.yaml
diff "$repo/params.yaml" params.yaml || true
ln -s "$repo/data/body_model" data/body_model
ln -s "$repo/data/check.json" data/check.json
ln -s "$repo/data/shards/train" data/shards/train
ln -s "$DEV/data/shards/test" data/shards/test
for phase in pretrain baseline; do
  PYTHONPATH="$repo" "$repo/.venv/bin/python" -m stages.train --phase $phase
done
for benchmark in synth_single synth_groups synth_multi synth_crowd; do
  PYTHONPATH="$repo" "$repo/.venv/bin/python" -m stages.evaluate --model baseline \
    --benchmark $benchmark
  cp "evaluations/$benchmark/baseline.jsonl" \
     "$repo/docs/probes/crop_partial/$benchmark/baseline_$name.jsonl"
done
