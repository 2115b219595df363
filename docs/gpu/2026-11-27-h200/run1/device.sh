#!/bin/bash
# GPU checks on a borrowed device machine (workplace-specific unpacking, not committed).
# payload.part00-02 were copied to /tmp/stage by the three calls before this one;
# this call carries part03-04.
set -u
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1
START=$(date +%s)
DEADLINE=$((START + ${BUDGET:-500}))
stamp() { echo "[$(( $(date +%s) - START ))s] $*"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
# step NAME CAP LOG CMD...: run CMD with timeout min(CAP, time left), output to LOG (appended)
step() {
  local name=$1 cap=$2 logfile=$3; shift 3
  local t; t=$(left); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 15 ]; then stamp "SKIP $name (no time left)" | tee -a "$logfile"; return; fi
  stamp "BEGIN $name (timeout ${t}s)" | tee -a "$logfile"
  timeout -k 5 "$t" "$@" >> "$logfile" 2>&1
  stamp "END $name rc=$?" | tee -a "$logfile"
}
unxz_to() {  # unxz_to OUTPUT INPUT
  if command -v xz > /dev/null; then xz -T0 -dc "$2" > "$1"
  else python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" "$2" > "$1"; fi
}
# edit_params KEY=VALUE...: set dotted keys of params.yaml (the device's copy only)
edit_params() {
  python3 - "$@" <<'EOF'
import sys, yaml
params = yaml.safe_load(open("params.yaml"))
for item in sys.argv[1:]:
    key, value = item.split("=")
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
print("params:", " ".join(sys.argv[1:]))
EOF
}
ENV=$OUT/env.log
stamp "unpack" | tee -a "$ENV"
STAGE=${STAGE:-/tmp/stage}
mkdir -p "$STAGE" /tmp/payload /tmp/site /tmp/annyc/v14
for part in 0/payload.part00 1/payload.part01 2/payload.part02 3/payload.part03 3/payload.part04; do
  [ -f "$STAGE/${part#*/}" ] || cp ".dev/$part" "$STAGE/" 2>> "$ENV"
done
ls -la "$STAGE" >> "$ENV" 2>&1
cat "$STAGE"/payload.part0[0-4] > /tmp/payload.tar
echo "payload sha256 $(sha256sum < /tmp/payload.tar | cut -c1-16) (here: 0941a37a4e8514f6)" >> "$ENV"
tar xf /tmp/payload.tar -C /tmp/payload
unxz_to /tmp/site.tar /tmp/payload/site.tar.xz && tar xf /tmp/site.tar -C /tmp/site
unxz_to /tmp/site/warp/bin/warp.so /tmp/payload/warpso.xz
unxz_to /tmp/site/warp/bin/warp-clang.so /tmp/payload/warpclang.xz
unxz_to /tmp/annyc/v14/build_compact_model_data_404d18204cb4a7d334eacadcf17850cf.safetensors \
  /tmp/payload/compact.xz
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 \
  /tmp/payload/whl/*.whl >> "$ENV" 2>&1
export PYTHONPATH=/tmp/site2:/tmp/site:$PWD ANNY_CACHE_DIR=/tmp/annyc
stamp "unpacked" | tee -a "$ENV"
{ nvidia-smi; nproc; git log -1 --format=%h 2>/dev/null; python3 -c "import torch, torchvision, warp, anny, dvclive, pycocotools; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(), 'warp', warp.__version__)"; } >> "$ENV" 2>&1

# 1. Every CUDA test (each against its CPU twin).
T=$OUT/cuda_tests.log
step "CUDA tests" 150 $T python3 -m pytest -q -p no:cacheprovider -m "not slow" -k cuda -rA tests/

# 2. make bench, part 1: the benches that need no shards or model (CPU and CUDA rows).
B=$OUT/bench.log
for name in sdf collision raster memory readers roi_align radam; do step "bench/$name" 60 $B python3 -m bench.$name; done

cp params.yaml /tmp/params.orig.yaml
# 3. Default training shards (300 images), the training-step bench, a short training run.
edit_params shard.workers=14 prepare.synth_train.size=300 train.pretrain.iters=100 \
  train.baseline.iters=100 train.finetune.iters=60 prepare.synth_crowd.size=24 \
  prepare.synth_multi.size=12 >> "$ENV" 2>&1
R=$OUT/train.log
step "prepare synth_train (300 images, 14 workers)" 60 $R \
  python3 -m stages.prepare --dataset synth_train --out data/shards/train/synth_train
step "bench/train" 60 $R python3 -m bench.train
for phase in pretrain baseline; do
  step "train $phase" 75 $R python3 -m stages.train --phase $phase
done
step "train finetune full" 60 $R python3 -m stages.train --phase finetune --variant full
for name in pretrain baseline full; do
  [ -f logs/$name/metrics.json ] && { echo "== $name"; cat logs/$name/metrics.json; } >> $R
done

# 4. make bench, part 2: prediction and refinement with the short run's full model.
for name in synth_crowd synth_multi; do
  step "prepare $name" 40 $B python3 -m stages.prepare --dataset $name --out data/shards/test/$name
done
step "bench/predict" 40 $B python3 -m bench.predict
step "bench/refine" 60 $B python3 -m bench.refine

# 5. The rest of the suite (not the slow dvc-repro tests), as long as time lasts.
cp /tmp/params.orig.yaml params.yaml  # the suite reads the committed params
S=$OUT/suite.log
step "test suite (not slow, not cuda)" 150 $S python3 -m pytest -q -p no:cacheprovider \
  -m "not slow" -k "not cuda" -n 8 tests/
stamp "done" | tee -a "$ENV"
