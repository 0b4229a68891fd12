"""Sentiment classification of IMDB reviews (imdb_lstm, imdb_bilstm_attention, imdb_transformer).

The family's whole story:

- `data.py`: the dataset loader and its preprocessor
- `models.py`: builders and registered specs
- `serving.py`: the raw-input recipe of its exports

Importing the package registers all of them.
"""

from applications.text import data  # noqa: F401
from applications.text import models  # noqa: F401
from applications.text import serving  # noqa: F401
