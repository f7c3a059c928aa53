#!/bin/bash
# The whole library pipeline on a GPU, for one short check on a lent machine (issue 14, item 7):
# demo data (or DATA=<folder of class folders>) -> data steps -> baselines -> per model a short Optuna study,
# training, evaluation -> promotion, as `benchmarks/bench_dagster.py --plain` runs it (no Dagster), at 224 px.
# Prints each model's test macro-F1 with its subject-bootstrap 95% interval, its verdict against the best
# baseline, and what ran (device, precision, epochs, median img/s). W&B off, no downloads.
#   timeout 300 bash benchmarks/gpu_pipeline.sh              # all three registry models
#   TRAINS='["resnet18_gray"]' bash benchmarks/gpu_pipeline.sh
# Settings (environment): TRAINS, SIZE (224), CNN_EP (30), R18_EP (20), R50_EP (10), WORK (/tmp/nf-gpu).
set -euo pipefail
export PYTHONUNBUFFERED=1 NEUROFLUX_OFFLINE=1 NEUROFLUX_TRACKING=disabled
PY=${PY:-python3}
TRAINS=${TRAINS:-'["neuroflux_cnn", "resnet18_gray", "resnet50"]'}
W=${WORK:-/tmp/nf-gpu}
rm -rf "$W" && mkdir -p "$W"
start=$SECONDS
if [ -n "${DATA:-}" ]; then
  data=$DATA
else
  data=$W/data
  $PY -c "from neuroflux_lib.demo.generator import generate_demo_dataset as g; g('$data', scale=1.0, seed=0)"
fi
cat > "$W/profile.json" <<JSON
{"description": "GPU check: the registry's models at ${SIZE:-224} px, short tuning, the configs' recipes",
 "trains": $TRAINS,
 "dataset": {"data_dir": "$data", "storage_dir": "$W/storage", "image_size": ${SIZE:-224}},
 "neuroflux_cnn": {"num_epochs": ${CNN_EP:-30}, "tune_trials": 3, "tune_epochs": 2, "use_tuned": false},
 "resnet18_gray": {"num_epochs": ${R18_EP:-20}, "tune_trials": 3, "tune_epochs": 2, "use_tuned": false},
 "resnet50": {"num_epochs": ${R50_EP:-10}, "tune_trials": 3, "tune_epochs": 2, "use_tuned": false}}
JSON
$PY "$(dirname "$0")/bench_dagster.py" --plain "$W/profile.json" 2>&1 | tail -25
echo "seconds (demo data + pipeline): $((SECONDS - start))"
STORAGE=$W/storage $PY - <<'PY'
import json, os, pathlib, statistics

storage = pathlib.Path(os.environ["STORAGE"])
for report in sorted(storage.rglob("report.json")):
    r = json.loads(report.read_text())
    f1 = r["intervals"]["macro_f1"]
    print(f"{r['model_name']}: test macro-F1 {f1['estimate']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}], "
          f"n={r['n_test']}; {r['comparison']['verdict']}")
for meta in sorted(storage.rglob("model.json")):
    m = json.loads(meta.read_text())
    t = m["training"]
    speed = statistics.median(h["train_images_per_s"] for h in t["history"])
    print(f"{m['architecture']}: {t['device']}, {t.get('precision', '?')}, {t['epochs_run']} epochs (best "
          f"{t['best_epoch']}), median train {speed:.0f} img/s, feature cache {t['feature_cache']['mode']}, "
          f"weights {m['weights_origin']}")
PY
