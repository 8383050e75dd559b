"""posteriordb reference posteriors written as jaxvi models (see ``models.py`` and ``README.md``)."""

from .models import (BUNDLED_ROOT, MODELS, POSTERIORS, build_model, data_root, flat_reference_names,
                     load_data, load_reference, load_reference_draws)

__all__ = ["BUNDLED_ROOT", "MODELS", "POSTERIORS", "build_model", "data_root", "flat_reference_names",
           "load_data", "load_reference", "load_reference_draws"]
