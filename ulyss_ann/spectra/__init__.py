"""Spectra and grids of spectra: what is fitted and what networks are trained on.

``spectrum`` (:class:`Spectrum`), ``readers`` (``read_spectrum`` over the registry of ``reader_registry``: APOGEE,
LAMOST, MUSE, 1-D FITS, SDSS/LAMOST tables, text, specutils; one ``read_*`` module each),
``inputs`` (paths, arrays, Quantities and specutils spectra as a Spectrum), ``grid``
(:class:`SpectralGrid`, the surrogate grid), ``grid_readers`` (Göttingen/PHOENIX),
``phoenix``, ``miles``, ``preprocessing`` (the paper's §2.1), ``lsf`` (ULySS's LSF files),
``simulate`` (MUSE-like spectra from a network), ``model_files`` (model spectra as FITS),
``examples`` (the bundled data).
"""

# the subpackage's modules (each name has one address: its module's)
__all__ = ["band_limited", "compression", "examples", "fits_spectra", "grid", "grid_readers", "inputs",
           "line_spread", "lsf_smooth", "miles", "model_files", "phoenix", "preprocessing", "progress",
           "read_apogee", "read_fits_1d", "read_lamost_image", "read_muse", "read_specutils", "read_survey_table",
           "read_text", "reader_registry", "readers", "reference_files", "simulate", "spectrum", "spectrum_medium",
           "specutils_spectra", "text_spectra"]
