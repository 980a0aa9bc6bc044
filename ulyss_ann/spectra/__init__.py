"""Spectra and grids of spectra: what is fitted and what networks are trained on.

``spectrum`` (:class:`Spectrum`), ``readers`` (MUSE, SDSS/LAMOST, 1-D FITS, text),
``inputs`` (paths, arrays, Quantities and specutils spectra as a Spectrum), ``grid``
(:class:`SpectralGrid`, the surrogate grid), ``grid_readers`` (Göttingen/PHOENIX),
``phoenix``, ``miles``, ``preprocessing`` (the paper's §2.1), ``lsf`` (ULySS's LSF files),
``simulate`` (MUSE-like spectra from a network), ``model_files`` (model spectra as FITS),
``examples`` (the bundled data).
"""
