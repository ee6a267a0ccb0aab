#!/usr/bin/env bash
# The main job: set up, then train and evaluate the demo pipeline (project/ "all" workflow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cd project
python3 -m weasel run all
