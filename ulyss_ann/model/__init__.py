"""The network as ULySS knows it: evaluation, parameters, the perceptron FITS file, wavelength grids.

``network`` (forward pass and Jacobian, the numerical core), ``input_maps`` (what is done to the
parameters before the first layer: ``linscale``, or ULySS's TGM polynomial terms), ``parameter`` (one input and
the checks on names and units), ``parameter_values`` (arrays, mappings and Quantities as
parameter arrays), ``interpolator`` (:class:`Interpolator`), ``perceptron_file`` (format
0.0.3 on disk), ``wavelength`` (:class:`WavelengthGrid`, the speed of light), ``bundled``
(the interpolators shipped in ``ulyss_ann/data``, by name: ``example``, ``miles``), ``limits`` (the memory
budget, checked from the headers), ``fits_scan`` (a plain FITS file's headers without astropy's objects) and
``scanned_header`` (their values, as astropy's Header gives them).
"""

# the subpackage's modules (each name has one address: its module's)
__all__ = ["bundled", "checksum", "fits_scan", "input_maps", "interpolator", "limits", "line_centres", "medium", "network",
           "nodes", "parameter", "parameter_values", "perceptron_file", "reference_names", "scanned_header",
           "wavelength"]
