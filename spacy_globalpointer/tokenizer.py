"""A tokenizer setting that follows the pipeline's language.

A config that names ``spacy.Tokenizer.v1`` keeps the rule-based tokenizer whatever
``[nlp] lang`` says: set to "zh", it makes a whole clause one token and no gold span
aligns. This one builds the tokenizer the language's own defaults name (for "zh",
one token a character), so the project's configs serve every language.
"""

from typing import Any, Callable

from spacy.language import Language
from spacy.util import registry

NAME = "spacy-globalpointer.language_tokenizer.v1"


@registry.tokenizers(NAME)
def create_language_tokenizer() -> Callable[[Language], Any]:
    """The tokenizer of the language's default config (what `spacy init config` picks)."""

    def make_tokenizer(nlp: Language) -> Any:
        default = dict(type(nlp).default_config["nlp"]["tokenizer"])
        if default.get("@tokenizers") == NAME:  # a language that defaults to this one
            raise ValueError(f"{NAME} cannot be the default tokenizer of language {nlp.lang!r}")
        return registry.resolve({"tokenizer": default})["tokenizer"](nlp)

    return make_tokenizer
