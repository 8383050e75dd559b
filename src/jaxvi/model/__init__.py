"""Floor 1, the model: lazy nodes, the Model context, distributions, transforms and the compiled model.

Nothing here imports from the floors above (vi, engine, results, variational, faces).
"""
