"""Task-specific logic beyond classification: losses, decoding, metrics.

Each module registers its task's loss/metrics into `zoo.training.TASKS` and
its evaluator into `zoo.evaluation.EVALUATORS`.  Both registries import this
package on their first lookup, so a new task is one module plus one import
line below.
"""

from zoo.tasks import translation  # noqa: F401
from zoo.tasks import speech  # noqa: F401
