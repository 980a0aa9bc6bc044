"""A grid of spectra with their parameters: what a network is trained on.

A :class:`SpectralGrid` holds n spectra on one wavelength sampling (float64,
n × npix), their parameters (n × npar) with names and units, and its provenance.
It is saved as one FITS file:

* HDU 0 ``FLUX``: the n × npix image (one spectrum per row), with the wavelength WCS
  on axis 1 and the provenance cards (``SURROGAT = T`` for the surrogate grid);
* HDU 1 ``PARAMS``: a binary table, one column per parameter, with units.

The **surrogate grid** (:func:`surrogate_grid`) stands in for the Göttingen spectra,
which cannot be downloaded here: the authors' trial-8 network evaluated at the 2908
real GSL nodes. Everything made from it says so.
"""

import os
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.perceptron_file import as_cards
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["SpectralGrid", "surrogate_grid"]


@dataclass(eq=False)
class SpectralGrid:
    """Spectra, their parameters and wavelengths.

    Attributes
    ----------
    flux : ndarray (n, npix)
    params : ndarray (n, npar)
    names, units : tuple of str
        Parameter names (``Teff``, ``Logg``, ``Fe/H``) and units (``K``, ``dex``).
    wavelength : WavelengthGrid
    meta : tuple of (keyword, value, comment)
        Provenance cards.
    """

    flux: np.ndarray
    params: np.ndarray
    names: tuple
    units: tuple
    wavelength: WavelengthGrid
    meta: tuple = field(default=())

    def __post_init__(self):
        self.flux = np.asarray(self.flux, dtype=np.float64)
        self.params = np.asarray(self.params, dtype=np.float64)
        self.names, self.units = tuple(self.names), tuple(self.units)
        self.meta = as_cards(self.meta)
        if self.flux.ndim != 2 or self.params.ndim != 2 or len(self.flux) != len(self.params):
            raise ValueError(f"flux {self.flux.shape} and params {self.params.shape} must be (n, npix), (n, npar)")
        if self.flux.shape[1] != self.wavelength.npix or self.params.shape[1] != len(self.names):
            raise ValueError("flux, parameters, names and wavelengths disagree in size")

    @classmethod
    def from_network(cls, interp, params, meta):
        """The network's spectra at ``params`` (n, npar), with its names, units and wavelengths.

        The network's axis as its file gives it: the surrogate grid made of the authors' trial 8
        carries trial 8's axis, vacuum although labelled air, as the authors' own grid files did, so
        that their Keras files export with it to their published interpolators byte for byte. A
        network trained on it inherits that axis: fit it with ``--model-medium vacuum``
        (``ulyss-ann info`` measures its lines and says so; the bundled example was moved to air).
        """
        return cls(interp.evaluate(params), params, interp.names, [p.unit for p in interp.parameters],
                   interp.wavelength, meta)

    @property
    def is_surrogate(self):
        return any(key == "SURROGAT" and bool(value) for key, value, _ in self.meta)

    def save(self, path, overwrite=False):
        """Write the grid as FITS (image + parameter table)."""
        image = fits.PrimaryHDU(self.flux)
        image.header["EXTNAME"] = "FLUX"
        for key, value, comment in self.wavelength.data_cards():
            image.header[key] = (value, comment)
        for key, value, comment in self.meta:
            if key not in image.header:  # the axis is described above, once
                image.header.append((key, value, comment))
        columns = [fits.Column(name=n, format="D", unit=u or None, array=self.params[:, i])
                   for i, (n, u) in enumerate(zip(self.names, self.units))]
        table = fits.BinTableHDU.from_columns(columns, name="PARAMS")
        try:
            fits.HDUList([image, table]).writeto(os.fspath(path), overwrite=overwrite)
        except OSError as exc:
            raise UlyssAnnError(f"{path}: cannot write: {exc}") from None

    @classmethod
    def load(cls, path):
        """Read a grid written by :meth:`save`; errors name the file and what is wrong."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UlyssAnnError(f"{path}: no such file (a grid: ulyss-ann grid surrogate -o {path})")
        try:
            with fits.open(path, memmap=False) as hdul:
                flux = np.asarray(hdul[0].data, dtype=float)
                header = hdul[0].header
                table = hdul["PARAMS"]
                names = tuple(table.columns.names)
                units = tuple(c.unit or "" for c in table.columns)
                params = np.column_stack([np.asarray(table.data[n], float) for n in names])
                skip = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "EXTNAME",
                        "CRPIX1", "CTYPE1", "CRVAL1", "CDELT1", "CUNIT1",
                        "WCSNAMEA", "CTYPE1A", "CRPIX1A", "CRVAL1A", "CDELT1A", "CUNIT1A"}  # the axis: data_cards
                meta = tuple((c.keyword, c.value, c.comment) for c in header.cards if c.keyword not in skip)
                wavelength = WavelengthGrid.from_header(header, npix=flux.shape[1])
        except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise UlyssAnnError(f"{path}: not a spectral grid (expected an image HDU FLUX and a table HDU "
                                f"PARAMS, as ulyss-ann grid writes): {exc}") from None
        return cls(flux, params, names, units, wavelength, meta)


def surrogate_grid(model, nodes_file=None):
    """The surrogate grid: network ``model`` (the authors' trial 8) at the nodes of ``nodes_file``.

    ``nodes_file`` None: the 2908 GSL nodes as the bundled example network carries them (its ``NODES``
    table: the authors' ``gsl_nodes.txt``, same values, same order), since the authors' repository has
    no node list for a user to download.
    """
    from ulyss_ann.model.interpolator import Interpolator

    interp = Interpolator.read(model)
    if nodes_file is None:
        params = np.array(Interpolator.read("example").nodes, dtype=float)
        node_source = "2908 GSL nodes of the bundled example (NODES)"
    else:
        from ulyss_ann.spectra.phoenix import read_node_list

        try:
            nodes = read_node_list(nodes_file)
        except (OSError, ValueError) as exc:
            raise UlyssAnnError(f"{nodes_file}: {exc}") from None
        params = np.array([[n["teff"], n["logg"], n["feh"]] for n in nodes])
        node_source = os.path.basename(nodes_file)
    meta = (("SURROGAT", True, "not real GSL spectra"),
            ("SRC_NET", os.path.basename(model), "network evaluated"),
            ("SRC_NODE", node_source, "node list"),
            ("HISTORY", "Surrogate grid of ulyss_ann: the stand-in for the Goettingen spectra,", ""),
            ("HISTORY", "which cannot be downloaded here. Everything made from it says so.", ""))
    return SpectralGrid.from_network(interp, params, meta)
