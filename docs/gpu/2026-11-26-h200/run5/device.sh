#!/bin/bash
set -u
export PYTHONUNBUFFERED=1
START=$(date +%s)
unxz_to() { local out=$1; shift; if command -v xz > /dev/null; then cat "$@" | xz -dc > "$out"; else cat "$@" | python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" > "$out"; fi; }
SITE=/tmp/site; mkdir -p $SITE /tmp/annyc/v14 /tmp/stage
for part in a/payload.part00 b/payload.part01 c2/payload.part02; do [ -f /tmp/stage/${part#*/} ] || cp .dev/$part /tmp/stage/; done
cat /tmp/stage/payload.part00 /tmp/stage/payload.part01 /tmp/stage/payload.part02 > /tmp/payload.tar
mkdir -p /tmp/payload && tar xf /tmp/payload.tar -C /tmp/payload
unxz_to /tmp/site.tar /tmp/payload/site.tar.xz && tar xf /tmp/site.tar -C $SITE
unxz_to $SITE/warp/bin/warp.so /tmp/payload/warpso.xz
unxz_to $SITE/warp/bin/warp-clang.so /tmp/payload/warpclang.xz
unxz_to /tmp/annyc/v14/build_compact_model_data_404d18204cb4a7d334eacadcf17850cf.safetensors /tmp/payload/compact.xz
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 /tmp/payload/*.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site2:$SITE:$PWD ANNY_CACHE_DIR=/tmp/annyc
echo "[$(( $(date +%s) - START ))s] unpacked"
timeout 90 python3 -m pytest -q -p no:cacheprovider -rA tests/test_refine.py 2>&1 | tail -25 | tee $OUT/refine_tests.log
echo "[$(( $(date +%s) - START ))s] done"
