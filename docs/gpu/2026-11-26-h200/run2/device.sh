#!/bin/bash
# GPU checks on a borrowed device machine (workplace-specific unpacking, not committed).
# payload.part00 and part01 were copied to /tmp/stage by the two calls before this one.
set -u
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1
START=$(date +%s)
DEADLINE=$((START + ${BUDGET:-560}))
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
unxz_to() {  # unxz_to OUTPUT INPUT...
  local out=$1; shift
  if command -v xz > /dev/null; then cat "$@" | xz -dc > "$out"
  else cat "$@" | python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" > "$out"; fi
}
ENV=$OUT/env.log
stamp "unpack" | tee -a "$ENV"
SITE=/tmp/site
mkdir -p $SITE /tmp/annyc/v14
mkdir -p /tmp/stage
for part in a/payload.part00 b/payload.part01 c/payload.part02; do  # if a call's copy is gone
  [ -f /tmp/stage/${part#*/} ] || cp .dev/$part /tmp/stage/ 2>> "$ENV"
done
ls -la /tmp/stage >> "$ENV" 2>&1
cat /tmp/stage/payload.part00 /tmp/stage/payload.part01 /tmp/stage/payload.part02 > /tmp/payload.tar
echo "payload sha256 $(sha256sum < /tmp/payload.tar) (here: 1810c44ca5df...)" >> "$ENV"
mkdir -p /tmp/payload && tar xf /tmp/payload.tar -C /tmp/payload
unxz_to /tmp/site.tar /tmp/payload/site.tar.xz && tar xf /tmp/site.tar -C $SITE
unxz_to $SITE/warp/bin/warp.so /tmp/payload/warpso.xz
unxz_to $SITE/warp/bin/warp-clang.so /tmp/payload/warpclang.xz
unxz_to /tmp/annyc/v14/build_compact_model_data_404d18204cb4a7d334eacadcf17850cf.safetensors /tmp/payload/compact.xz
sha256sum $SITE/warp/bin/*.so /tmp/annyc/v14/* >> "$ENV"
echo "here: warp-clang 4a0eaf4d, warp 568904b7, compact 8cff9d2e" >> "$ENV"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 \
  /tmp/payload/*.whl >> "$ENV" 2>&1
export PYTHONPATH=/tmp/site2:$SITE:$PWD ANNY_CACHE_DIR=/tmp/annyc
stamp "unpacked" | tee -a "$ENV"
{ nvidia-smi; nproc; python3 -c "import torch, torchvision, warp; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(), 'warp', warp.__version__); warp.init()"; } >> "$ENV" 2>&1

# 0. why Warp depth maps differed between CPU and CUDA (old two-pass vs the new z-buffer)
D=$OUT/diag.log
step "diag raster" 60 $D python3 .dev/c/diag_raster.py
# 1. the CUDA tests (and their CPU twins), then the raster bench (new z-buffer)
T=$OUT/cuda_tests.log
step "CUDA tests" 150 $T python3 -m pytest -q -p no:cacheprovider -m "not slow" -k cuda -rA tests/
B=$OUT/bench.log
step "bench/raster" 60 $B python3 -m bench.raster

# 2. the default training shards, the training-step bench and a short training run on CUDA
python3 - <<'EOF2' >> "$ENV" 2>&1
import yaml
params = yaml.safe_load(open("params.yaml"))
params["shard"]["workers"] = 14
params["train"]["pretrain"]["iters"] = 150
params["train"]["baseline"]["iters"] = 150
params["train"]["finetune"]["iters"] = 100
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
print("params: workers 14, iters pretrain 150 / baseline 150 / finetune 100")
EOF2
R=$OUT/train.log
rm -rf logs/pretrain logs/baseline logs/full
step "prepare synth_train (1500 images, 14 workers)" 90 $R \
  python3 -m stages.prepare --dataset synth_train --out data/shards/train/synth_train
step "bench/train" 90 $R python3 -m bench.train
for phase in pretrain baseline; do
  step "train $phase" 75 $R python3 -m stages.train --phase $phase
done
step "train finetune full" 75 $R python3 -m stages.train --phase finetune --variant full
for name in pretrain baseline full; do
  [ -f logs/$name/metrics.json ] && { echo "== $name"; cat logs/$name/metrics.json; } >> $R
done

# 3. the rest of the suite (not the slow dvc-repro tests), as long as time lasts
S=$OUT/suite.log
step "test suite (not slow)" 400 $S python3 -m pytest -q -p no:cacheprovider -m "not slow" -k "not cuda" -n 8 tests/
stamp "done" | tee -a "$ENV"
