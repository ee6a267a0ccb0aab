#!/bin/bash
# Longer-budget accuracy sweep on the lent device machine's 16 CPU cores (not its GPU):
# one single-threaded `python -m bench train-one` per job, all in parallel, each stopped after
# $TRAIN_S seconds of updates, then the dev-tuned threshold (global_pointer, spancat).
# Run from the repo root through the device tool, carrying .gpu (spaCy's py3.12 wheels,
# pytorch-crf) and project/corpus/bench (the DocBins `python -m bench run` prepares).
# Results (result.json, threshold.json, logs; no models) go to $OUT/sweep.tgz: the device tool
# returns only a few files and no deep folders.
set -u
TRAIN_S=${TRAIN_S:-300}
JOBS=${JOBS:-project/bench/gpu/sweep_jobs.txt}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -z "${SWEEP_LOCAL:-}" ]; then  # SWEEP_LOCAL=1: a dry run here, with the local install
  mkdir -p /tmp/site && tar xzf .gpu/site.tgz -C /tmp/site
  export PYTHONPATH=/tmp/site
  python3 -m pip install -q --no-deps --no-index --target /tmp/site .gpu/pytorch_crf-*.whl 2>&1 | tail -1
  python3 -m pip install -q --no-deps --no-build-isolation --no-index . 2>&1 | tail -1
fi
python3 -c "import spacy, torch, spacy_globalpointer, torchcrf; print('spacy', spacy.__version__, 'torch', torch.__version__)"
nproc --all; lscpu | grep -m1 "Model name"
cd project
while read -r ds enc sys name extra; do
  [ -z "$ds" ] || [ "${ds:0:1}" = "#" ] && continue
  d=/tmp/sweep/$ds/$enc/$name
  mkdir -p "$d"
  # The results store's variant: the job's --set settings (last key part) and the time budget.
  # shellcheck disable=SC2086  # $extra holds the job's --set options
  variant=$(python3 -c 'import sys; from bench.common import parse_overrides; from bench.migrate_v1 import sweep_variant
print(sweep_variant({"overrides": parse_overrides(sys.argv[2:]), "max_train_seconds": float(sys.argv[1])}))' \
    "$TRAIN_S" ${extra//--set /})
  (
    # shellcheck disable=SC2086
    python3 -m bench train-one "$ds" "$enc" "$sys" "$d" --corpus-dir corpus/bench/$ds \
      --steps 100000 --eval-every 500 --max-train-seconds "$TRAIN_S" --experiment sweep --variant "$variant" \
      $extra > "$d/train.log" 2>&1
    case "$sys" in global_pointer*|spancat*)
      python3 -m bench tune-threshold "$d" --corpus-dir corpus/bench/$ds >> "$d/train.log" 2>&1;; esac
    tail -n 2 "$d/train.log" | sed "s|^|$ds/$enc/$name: |"
  ) &
done < "../$JOBS"
wait
tar czf "$OUT/sweep.tgz" --exclude=model-best -C /tmp/sweep .
echo SWEEP DONE
