"""Spoken-digit recognition with CTC on FSDD (fsdd_ctc).

The family's whole story:

- `data.py`: the dataset loader and its preprocessor
- `task.py`: loss, decoding, metrics, evaluator
- `models.py`: builders and registered specs
- `serving.py`: the raw-input recipe of its exports

Importing the package registers all of them.
"""

from applications.speech import data  # noqa: F401
from applications.speech import task  # noqa: F401
from applications.speech import models  # noqa: F401
from applications.speech import serving  # noqa: F401
