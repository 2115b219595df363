#!/usr/bin/env bash
# Probe (not part of the pipeline): why the trained models differ from one CPU to the
# next although the shards do not, and whether pinning the kernels' instruction set
# would make them agree. Run from the repository root after `make repro`.
#
# 1. The first crop-pretraining step's logged loss under each pinned instruction set:
#    a scratch copy of the repository with train.pretrain.iters set to 1, the real shards.
# 2. The crop-pretraining step's speed, default against AVX2-pinned, alternating.
set -euo pipefail
root=$(pwd)
scratch=$(mktemp -d)
git ls-files | tar -cf - -T - | tar -xf - -C "$scratch"
mkdir -p "$scratch/data"
ln -s "$root/data/shards" "$scratch/data/shards"
cp -r data/body_model data/check.json "$scratch/data/"
cd "$scratch"
sed -i 's/pretrain: {iters: [0-9]*,/pretrain: {iters: 1,/' params.yaml
first_loss() {
    rm -rf logs/pretrain checkpoints/pretrain
    env "$@" python -m stages.train --phase pretrain > /dev/null 2>&1
    echo "$* step-0 total loss: $(sed -n 2p logs/pretrain/plots/metrics/train/total.tsv | cut -f2)"
}
python -c "import torch; print('ATen CPU capability:', torch.backends.cpu.get_cpu_capability())"
for isa in SSE41 AVX AVX2 AVX2_VNNI AVX512_CORE AVX512_CORE_VNNI AVX512_CORE_BF16; do
    first_loss ONEDNN_MAX_CPU_ISA=$isa
done
first_loss X=default
first_loss ATEN_CPU_CAPABILITY=default
first_loss ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX2
first_loss ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2
for combo in "X=default" "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" \
             "X=default" "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"; do
    echo "$combo: $(env $combo PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2 | grep crops)"
done
rm -rf "$scratch"
