set -e
mkdir -p /tmp/site && tar xzf .gpu/site.tgz -C /tmp/site
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index . 2>&1 | tail -1
C=project/corpus/genia
for s in global_pointer global_pointer_efficient spancat; do
  ( timeout 390 python3 -m spacy train project/bench/configs/cnn-$s.cfg --output /tmp/out/$s --paths.train $C/train.spacy --paths.dev $C/dev.spacy --training.max_steps 8000 --training.eval_frequency 500 --gpu-id 0 > $OUT/train_$s.log 2>&1; echo "$s exit $?" >> $OUT/train_$s.log ) &
done
wait
for s in global_pointer global_pointer_efficient spancat; do
  python3 -m spacy evaluate /tmp/out/$s/model-best $C/test.spacy --gpu-id 0 --output $OUT/test_$s.json > /dev/null 2>&1 || echo "eval $s failed"
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], 'test P/R/F', round(m['spans_sc_p']*100,2), round(m['spans_sc_r']*100,2), round(m['spans_sc_f']*100,2), 'speed', int(m['speed']))" $OUT/test_$s.json $s
  grep -E "^ +[0-9]+ +[0-9]+ " $OUT/train_$s.log | tail -3
done
