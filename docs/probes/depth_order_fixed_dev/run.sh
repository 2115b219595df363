#!/bin/bash
# Depth-order weight on the development copies (seed-1000 draws), fixed optimiser.
# Run in a scratch clone of a031f29 holding: the committed run's training shards and
# models/baseline/model.pt (a031f29's, byte-identical to deaab73's), and
# data/shards/test/synth_{multi,crowd} drawn with `seed: 1000` (the development copies of
# docs/probes/depth_order_dev, never the test images). Writes evaluations/<benchmark>/
# baseline.jsonl and full_w<weight>_s<seed>.jsonl, copied here.
set -euo pipefail
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=.
setp() { python - "$1" "$2" <<'PY'
import sys, yaml
p = yaml.safe_load(open('params.yaml'))
p['seed'] = int(sys.argv[1]); p['losses']['full']['depth_order'] = float(sys.argv[2])
yaml.safe_dump(p, open('params.yaml', 'w'), sort_keys=False)
PY
}
cp params.yaml params.orig.yaml
setp 0 25
for b in synth_multi synth_crowd; do
  python -m stages.evaluate --model baseline --benchmark $b 2>&1 | tail -1
done
for w in 25 100; do for s in 0 1 2; do
  cp params.orig.yaml params.yaml; setp $s $w
  rm -rf checkpoints/full logs/full models/full
  python -m stages.train --phase finetune --variant full 2>&1 | tail -1
  for b in synth_multi synth_crowd; do
    python -m stages.evaluate --model full --benchmark $b 2>&1 | tail -1
    mv evaluations/$b/full.jsonl evaluations/$b/full_w${w}_s${s}.jsonl
    mv metrics/$b/full.json metrics/$b/full_w${w}_s${s}.json
  done
done; done
cp params.orig.yaml params.yaml
echo DONE
