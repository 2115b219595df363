#!/bin/bash
# Fine-tune length with the fixed optimiser, on the development copies (seed-1000 draws).
# Run in the scratch clone of docs/probes/depth_order_fixed_dev (a031f29's training shards
# and baseline model, data/shards/test/synth_{multi,crowd} drawn with `seed: 1000`, never
# the test images), after its run.sh (whose 150-step fine-tunes, full_w25_s<seed>, are the
# short arm here). Fine-tunes VARIANT for ITERS steps (default: full, 450) with seeds 0-2
# and evaluates each on both benchmarks: evaluations/<benchmark>/<label>_i<iters>_s<seed>.jsonl
# (LABEL defaults to VARIANT). COLLISION and DEPTH, when set, replace the variant's
# scene-loss weights (the control: `LABEL=noscene COLLISION=0 DEPTH=0 bash run.sh`).
set -euo pipefail
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=.
export VARIANT=${VARIANT:-full}
ITERS=${ITERS:-450}
LABEL=${LABEL:-$VARIANT}
setp() { python - "$1" "$2" <<'PY'
import os, sys, yaml
p = yaml.safe_load(open('params.yaml'))
p['seed'] = int(sys.argv[1]); p['train']['finetune']['iters'] = int(sys.argv[2])
losses = p['losses'][os.environ.get('VARIANT', 'full')]
for key, name in (('collision', 'COLLISION'), ('depth_order', 'DEPTH')):
    if os.environ.get(name):
        losses[key] = float(os.environ[name])
yaml.safe_dump(p, open('params.yaml', 'w'), sort_keys=False)
PY
}
cp params.yaml params.orig.yaml
for s in ${SEEDS:-0 1 2}; do
  cp params.orig.yaml params.yaml; setp $s $ITERS
  rm -rf checkpoints/$VARIANT logs/$VARIANT models/$VARIANT
  python -m stages.train --phase finetune --variant $VARIANT 2>&1 | tr '\r' '\n' | tail -1
  cp logs/$VARIANT/metrics.json logs/${LABEL}_i${ITERS}_s${s}.metrics.json
  for b in synth_multi synth_crowd; do
    python -m stages.evaluate --model $VARIANT --benchmark $b 2>&1 | tr '\r' '\n' | tail -1
    mv evaluations/$b/$VARIANT.jsonl evaluations/$b/${LABEL}_i${ITERS}_s${s}.jsonl
    mv metrics/$b/$VARIANT.json metrics/$b/${LABEL}_i${ITERS}_s${s}.json
  done
done
cp params.orig.yaml params.yaml
echo DONE
