"""Model families: one folder each, holding the family's whole story.

    applications/<family>/
        models.py    builders, registered with `@register_model` (+ the family's own layers)
        data.py      the dataset loader (`DATASETS`) and its fitted preprocessor (`PREPROCESSORS`)
        task.py      loss, decoding, metrics and evaluator (`TASKS`, `EVALUATORS`), when
                     classification (`zoo.tasks.classification`) does not serve
        serving.py   the raw-input recipe an export embeds (`SERVINGS`)

Importing this package imports every family, which registers its parts in
zoo's registries; those registries import it on their first lookup
(`zoo.registry.load_families`), so users never have to.  A new family is one
folder plus one import line here (docs/ADDING_A_FAMILY.md).
"""

from applications import image  # noqa: F401  (cifar10_cnn, cifar10_resnet, cifar10_vit)
from applications import text  # noqa: F401  (imdb_lstm, imdb_bilstm_attention, imdb_transformer)
from applications import translation  # noqa: F401  (multi30k_transformer)
from applications import speech  # noqa: F401  (fsdd_ctc)
from applications import gpt  # noqa: F401  (imdb_gpt, imdb_gpt_classifier)
