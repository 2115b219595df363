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
for part in a/payload.part00 b/payload.part01 c2/payload.part02 m1/model.part0 m2/model.part1; do  # if a call's copy is gone
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
unxz_to /tmp/extra.tar .dev/c2/extra.tar.xz && tar xf /tmp/extra.tar -C $SITE
stamp "unpacked" | tee -a "$ENV"

T=$OUT/cuda_tests.log
step "CUDA tests (all)" 120 $T python3 -m pytest -q -p no:cacheprovider -m "not slow" -k "cuda" -rA tests/
step "refine and collision tests" 90 $T python3 -m pytest -q -p no:cacheprovider tests/test_refine.py tests/test_collision.py tests/test_sdf.py
python3 - <<'EOF2' >> "$ENV" 2>&1
import yaml
params = yaml.safe_load(open("params.yaml"))
params["shard"]["workers"] = 14
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
EOF2
mkdir -p models/full
cat /tmp/stage/model.part0 /tmp/stage/model.part1 > models/full/model.pt
echo "model sha256 $(sha256sum < models/full/model.pt | cut -c1-16) (here: 1989b223dbab94cd)" >> "$ENV"
B=$OUT/bench.log
step "prepare synth_crowd" 45 $B python3 -m stages.prepare --dataset synth_crowd --out data/shards/test/synth_crowd
step "bench/refine cuda" 60 $B python3 -m bench.refine --device cuda
step "bench/refine cpu" 90 $B python3 -m bench.refine --device cpu
stamp "done" | tee -a "$ENV"
