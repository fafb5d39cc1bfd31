"""Evidence: what a request says, in words that carry to other sites (``vocabulary``: the words the rules
and the features share; ``request``: path and query shape, payload and probe evidence, agent class).
"""
