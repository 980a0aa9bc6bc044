"""Training a network on a spectral grid: the paper's Keras recipe and our fast recipe.

``keras_recipe`` (the paper's recipe, and :func:`train`, the entry point of both),
``fast_training`` with its numerical core ``fast_recipe`` (variable projection +
Levenberg–Marquardt in NumPy), ``grid_network`` (the input standardisation, the hold-out
split, weights → :class:`~ulyss_ann.Interpolator`), ``keras_io`` (Keras files). Keras (on
torch) is imported only by the Keras recipe and the Keras file reader, when they run.
"""
