"""The models: ``clients`` (the client model, its rulings and verdicts), ``weblog`` (the line model and the
client model together: training, scoring, metrics, the model file), ``crossval`` (the honest figures).
"""
