"""The native engine: ULySS's stellar fit in NumPy/SciPy, no GDL needed (``--engine native``).

``engine`` (:class:`~ulyss_ann.fitting.native_engine.engine.NativeEngine`, the class the
registry names), ``numerics`` (ULySS's rebinning, extraction and LOSVD kernels), ``sampled_losvd``
(ULySS's sampled LOSVD and IDL's edge-truncated convolution, shared with the kernels), ``lockstep``
(MPFIT's bounded Levenberg–Marquardt for many fits at once), ``start_search`` (which guesses are
fitted), ``solutions`` (a spectrum's best guess, as ULySS picks it), ``block`` (many spectra on one
ln-λ grid: model, residuals, Jacobian), ``kernels`` (their compiled numba loops), ``notice`` (whether their
compilation is still to be announced) and
``torch_block`` (the block on torch, for a GPU). Only the registry's string names this package.
"""

__all__ = ["engine", "numerics", "sampled_losvd", "lockstep", "start_search", "solutions", "block", "kernels",
           "notice", "torch_block"]
