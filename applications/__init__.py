"""Model families, one file each, in the `keras.applications` tradition.

Importing this package registers every family's models with `zoo.registry`;
the registry imports it on first lookup, so users never have to.  A new family
is one import line here.
"""

from applications import image_cnn  # noqa: F401  (registers cifar10_*)
from applications import text_lstm  # noqa: F401  (registers imdb_*)
from applications import translator  # noqa: F401  (registers multi30k_transformer)
from applications import speech  # noqa: F401  (registers fsdd_ctc)
from applications import gpt  # noqa: F401  (registers imdb_gpt, imdb_gpt_classifier; a folder: models, data, task, serving)
