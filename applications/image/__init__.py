"""Image classification on CIFAR-10 (cifar10_cnn, cifar10_resnet, cifar10_vit).

The family's whole story:

- `data.py`: the dataset loader and its preprocessor
- `models.py`: builders and registered specs
- `serving.py`: the raw-input recipe of its exports

Importing the package registers all of them.
"""

from applications.image import data  # noqa: F401
from applications.image import models  # noqa: F401
from applications.image import serving  # noqa: F401
