"""Floor 5, faces: plots, teaching views, model graphs, the ``jaxvi`` command and the demo."""
