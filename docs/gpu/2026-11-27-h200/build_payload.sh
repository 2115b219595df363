#!/bin/bash
# Builds the payload that device.sh unpacks on a borrowed GPU machine (Python 3.12 there,
# no network), from this machine's .venv (Python 3.11) and Anny cache. Run from the repo root.
# Pure-Python distributions travel as files; those with compiled parts as cp312 wheels;
# Warp's two libraries (ctypes, Python-independent) and Anny's compact cache xz-compressed.
# The result is split into parts of 46 MB: with docs/ out of the index for the calls
# (`git rm -r -q --cached docs` and `/docs/` in .git/info/exclude, undone afterwards by
# `git reset -q -- docs`) the tree travelling with each call is about 11 MB, and one call
# carries at most 64 MiB. Parts 0-2 are copied to the machine's /tmp/stage by three
# one-line calls, carrying .dev/0, .dev/1, .dev/2; the last call carries .dev/3 (the last
# parts and device.sh). The machine is given back 30 s after a call: keep calls back to back.
set -eu
W=/tmp/gpu; rm -rf "$W"; mkdir -p "$W/whl"
sed -n '/^nvidia-h100-x1, nvidia-h200: their image/,$p' /work/.library/device/KINDS.md \
  | sed 's/.*Packages: //' > "$W/device_pkgs.txt"
BINARY="embreex pygit2 cryptography dulwich wcwidth pydantic-core rtree pycocotools cffi orjson"
.venv/bin/python - "$W" $BINARY <<'PY'
import importlib.metadata as md, sys, tarfile
work, binary = sys.argv[1], set(sys.argv[2:])
norm = lambda n: n.lower().replace("_", "-").replace(".", "-")
on_device = {norm(n) for n in open(f"{work}/device_pkgs.txt").read().replace(",", " ").split()}
skip = on_device | binary | {"ruff", "torch", "torchvision", "triton", "pip", "setuptools", "crmh"}
with tarfile.open(f"{work}/site.tar", "w") as tar:
    for dist in md.distributions():
        if norm(dist.metadata["Name"]) in skip or norm(dist.metadata["Name"]).startswith("nvidia-"):
            continue
        for name in dist.files or []:
            text = str(name)
            if "__pycache__" in text or text.startswith("..") or text.endswith(("warp.so", "warp-clang.so")):
                continue
            if dist.locate_file(name).exists():
                tar.add(str(dist.locate_file(name)), arcname=text, recursive=False)
PY
for name in $BINARY; do
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$W/whl" "$name==$version"
done
SP=$(echo .venv/lib/python3*/site-packages)
xz -T2 -6 -c "$W/site.tar" > "$W/site.tar.xz"
xz -T2 -6 -c "$SP/warp/bin/warp.so" > "$W/warpso.xz"
xz -T2 -6 -c "$SP/warp/bin/warp-clang.so" > "$W/warpclang.xz"
xz -T2 -6 -c ~/.cache/anny/v14/build_compact_model_data_*.safetensors > "$W/compact.xz"
(cd "$W" && tar cf payload.tar site.tar.xz warpso.xz warpclang.xz compact.xz whl)
sha256sum "$W/payload.tar" | cut -c1-16
rm -rf .dev/[0-9]; split -b 46000000 -d "$W/payload.tar" .dev/payload.part
for part in .dev/payload.part*; do  # parts 00-02 one per folder, the rest with device.sh
  n=${part##*part}; folder=.dev/$(( 10#$n < 3 ? 10#$n : 3 )); mkdir -p "$folder"; mv "$part" "$folder/"
done
cp docs/gpu/2026-11-27-h200/device.sh .dev/3/
# Smoke test here, unpacked as device.sh unpacks it: Warp must load its library from the
# unpacked tree (this machine's Python, so the cp312 wheels are not checked).
C=$W/check; mkdir -p "$C/warp/bin"; tar xf "$W/site.tar" -C "$C"
cp "$SP/warp/bin/warp.so" "$SP/warp/bin/warp-clang.so" "$C/warp/bin/"
.venv/bin/python -c "import sys; sys.path.insert(0, '$C'); import warp, anny, dvclive, webdataset; \
assert warp.__file__.startswith('$C'), warp.__file__; warp.init(); print('payload imports ok')"
