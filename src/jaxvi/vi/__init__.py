"""Floor 2, VI numerics: families, flows, objectives, Stein kernels, optimizers, Pathfinder paths and starts.

Pure functions over pytrees; imports only from floor 1 (``jaxvi.model``).
"""
