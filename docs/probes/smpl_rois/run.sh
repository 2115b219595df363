#!/usr/bin/env bash
# Probe (not part of the pipeline): the baseline trained with at most 8 SMPL-branch RoIs
# per image against every positive, at a second training seed (1000; the committed run
# is seed 0 and the run before it, a3c7292, is its every-positive twin). Two scratch
# workspaces share a workspace's data; each pretrains, trains the baseline and
# evaluates it on the four synthetic benchmarks (about 20 minutes in all here).
#
#   bash docs/probes/smpl_rois/run.sh /path/to/workspace     # after `dvc repro` there
set -euo pipefail
workspace=$(realpath "$1")
repo=$(git rev-parse --show-toplevel)
for cap in 8 0; do
  scratch=/tmp/smpl_rois_cap$cap
  rm -rf "$scratch" && mkdir -p "$scratch"
  ln -s "$workspace/data" "$scratch/data"
  sed -e "s/^seed: 0$/seed: 1000/" \
      -e "s/^  smpl_rois_per_image: 8 /  smpl_rois_per_image: $cap /" \
      "$workspace/params.yaml" > "$scratch/params.yaml"
  cd "$scratch"
  for phase in pretrain baseline; do
    PYTHONPATH="$repo" "$repo/.venv/bin/python" -m stages.train --phase $phase
  done
  for benchmark in synth_single synth_groups synth_multi synth_crowd; do
    PYTHONPATH="$repo" "$repo/.venv/bin/python" -m stages.evaluate --model baseline \
      --benchmark $benchmark
  done
done
PYTHONPATH="$repo" "$repo/.venv/bin/python" "$repo/docs/probes/smpl_rois/paired.py" \
  /tmp/smpl_rois_cap8 /tmp/smpl_rois_cap0
