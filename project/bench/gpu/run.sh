set -e
mkdir -p /tmp/site && tar xzf .gpu/site.tgz -C /tmp/site
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index . 2>&1 | tail -2
python3 -c "import spacy, thinc, cupy; print(spacy.__version__, thinc.__version__, cupy.__version__)"
timeout 400 python3 project/bench/gpu/gpu_check.py 2>&1 | tee $OUT/gpu_check.log
