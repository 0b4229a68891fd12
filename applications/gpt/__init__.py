"""Text generation family: a GPT-style decoder-only language model on IMDB reviews.

The family's whole story lives in this folder:

- `models.py`   `GPTLanguageModel` (causal self-attention blocks from the shared
                layers, tied output embedding, key/value cache) and
                `GPTClassifier` (the same backbone plus a classification head);
                registers `imdb_gpt` and `imdb_gpt_classifier`.
- `data.py`     `GPTTokenizer` (keras-hub WordPiece learned on the IMDB train
                split), the `imdb_lm` and `imdb_wordpiece` datasets.
- `task.py`     the `language_model` task: masked token cross-entropy and
                perplexity, generation with keras-hub samplers over the cache,
                the test-set evaluator.
- `serving.py`  prompt strings -> generated strings inside a SavedModel.

Importing the package registers all of them.
"""

from applications.gpt import data  # noqa: F401  (registers imdb_lm, imdb_wordpiece, the wordpiece_lm preprocessor)
from applications.gpt import task  # noqa: F401  (registers the language_model task and evaluator)
from applications.gpt import serving  # noqa: F401  (registers the language_model serving recipe)
from applications.gpt import models  # noqa: F401  (registers imdb_gpt, imdb_gpt_classifier)
