"""Training a network on a spectral grid: the paper's Keras recipe, our fast recipe, and others registered.

``train`` (:func:`~ulyss_ann.training.train.train`, the entry point, and the registry of
recipes), ``recipe`` (the base class :class:`~ulyss_ann.training.recipe.Recipe`),
``keras_recipe`` (the paper's recipe), ``fast_training`` (the fast recipe on a grid) with
its numerical core ``fast_recipe`` (variable projection + Levenberg–Marquardt in NumPy),
``grid_network`` (the input standardisation, the hold-out split, weights →
:class:`~ulyss_ann.Interpolator`), ``keras_io`` (Keras files), ``ensemble`` (networks averaged into one
perceptron), ``tgm_baseline`` (ULySS's TGM polynomial fitted to a grid, the baseline networks are scored
against). Keras (on torch) is
imported only by the Keras recipe and the Keras file reader, when they run.
"""

# the subpackage's modules (each name has one address: its module's)
__all__ = ["ensemble", "fast_recipe", "fast_training", "grid_network", "keras_io", "keras_recipe", "outlier_stars",
           "recipe", "tgm_baseline", "train"]
