"""Features: a line as columns, a client as counts (``families``: the switchable families; ``featurizer``:
tokens, context, vocabulary; ``counts``: each client's tally and when it is judged).
"""

# What the module of this name offered before the layout, for imports that name it.
from .counts import RequestFacts
from .featurizer import AGENT_MODES, Context, Featurizer, request_facts, request_tokens

__all__ = ["AGENT_MODES", "Context", "Featurizer", "request_facts", "request_tokens", "RequestFacts"]
