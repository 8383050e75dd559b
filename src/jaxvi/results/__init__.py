"""Floor 4, results: draws -> InferenceData, predictive sampling, diagnostics and NUTS.

Imports only from floors 1-3.
"""
