#!/usr/bin/env bash
# Probe (not part of the pipeline): the training step of the day issue 13 was filed,
# run on today's machine. Checks out that commit (84bba26, the parent of the first
# issue-13 commit) into a scratch worktree, points it at a workspace's training shards
# (the shard format has not changed since) and runs *its own* bench/train.py: its
# default profile (float32, 256 wide, torchvision's RoIAlign, torch's RAdam, every
# positive in the SMPL branch), fresh weights (its worktree has no trained model).
#
#   bash docs/probes/issue_day_step/run.sh /path/to/workspace   # after `dvc repro` there
set -euo pipefail
workspace=$(realpath "$1")
repo=$(git rev-parse --show-toplevel)
scratch=$(mktemp -d)
git -C "$repo" worktree add -q "$scratch/old" 84bba26
trap 'rm -f "$scratch/old/data"; git -C "$repo" worktree remove --force "$scratch/old"; rm -rf "$scratch"' EXIT
ln -s "$workspace/data" "$scratch/old/data"
cd "$scratch/old"
PYTHONPATH="$scratch/old" "$repo/.venv/bin/python" bench/train.py
