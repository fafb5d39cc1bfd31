"""Labels: good, gray and bad for training and evaluation (``rules``: the rule set and label files;
``data``: labelled lines and the split by client).
"""

# What the module of this name offered before the layout, for imports that name it.
from .rules import CLASSES, RuleLabeler, normalise_label, read_label_file

__all__ = ["CLASSES", "RuleLabeler", "normalise_label", "read_label_file"]
