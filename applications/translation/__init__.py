"""English-to-German translation on Multi30k (multi30k_transformer).

The family's whole story:

- `data.py`: the dataset loader and its preprocessor
- `task.py`: loss, decoding, metrics, evaluator
- `models.py`: builders and registered specs
- `serving.py`: the raw-input recipe of its exports

Importing the package registers all of them.
"""

from applications.translation import data  # noqa: F401
from applications.translation import task  # noqa: F401
from applications.translation import models  # noqa: F401
from applications.translation import serving  # noqa: F401
