"""Read and write the ULySS perceptron interpolator FITS format (version 0.0.3).

Layout, as in the authors' published files (all arrays float64; row 0 of each
array is the bias, rows 1.. the weights, so a layer is ``y = W[0] + x @ W[1:]``):

* HDU 0, ``EXTNAME='TERM_WEIGHTS'``: the output layer (``I_LAYER = I_HLAYER + 1``),
  and the wavelength WCS of the output pixels (``CTYPE1/CRPIX1/CRVAL1/CDELT1``).
* HDU 1.. ``HIDDEN_LAYER_k`` for k = I_HLAYER down to 1.
* Every layer HDU repeats ``I_AFUNC`` (its activation), ``I_LAYER`` (its index),
  ``I_VERSIO='0.0.3'``, ``I_PREPRO='linscale'`` (inputs standardised as
  ``x = (p - I_PR_Bn) / I_PR_Sn``), ``I_POSTPR`` (empty: no post-processing),
  ``I_HLAYER`` (number of hidden layers) and, for each parameter n = 1..npar,
  ``I_P_NMn`` name, ``I_P_UNn`` unit, ``I_P_LBn``/``I_P_HBn`` bounds, ``I_P_STn`` step
  for numerical derivatives, ``I_PR_Bn`` mean and ``I_PR_Sn`` standard deviation.

An optional binary table HDU ``NODES`` lists the training nodes (one column per
parameter, named and with units as the parameters): networks made by ulyss_ann
carry it so that fitters can tell interpolation from extrapolation (the GSL grid
has holes at its edges). ULySS and the generated GDL, which read layer HDUs only,
ignore it; so does this reader for any other HDU.  Sizes are checked from the headers before
any data is read (:mod:`~ulyss_ann.model.limits`, ``ULYSS_ANN_MAX_MODEL_VALUES``).
Other keywords of HDU 0 (provenance such as ``SURROGAT``,
``ORIGIN``, ``HISTORY``) are kept in :attr:`Interpolator.meta` and written back.
"""

import math
import os
import warnings

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import InterpolatorFileError, first_line
from ulyss_ann.model.input_maps import INPUT_MAPS
from ulyss_ann.model.medium import medium_from_header
from ulyss_ann.model.limits import MAX_MODEL_VALUES_VARIABLE, declared_data, max_model_values, truncation
from ulyss_ann.model.network import ACTIVATIONS
from ulyss_ann.model.parameter import Parameter, check_parameter_name, check_parameter_unit

__all__ = ["FORMAT_VERSION", "read_perceptron", "write_perceptron", "LAYER_KEYWORDS", "as_cards"]

FORMAT_VERSION = "0.0.3"

#: Keywords every layer HDU carries besides the per-parameter ones, with their comments.
LAYER_KEYWORDS = {
    "I_AFUNC": "Activation function",
    "I_LAYER": "Index of the target layer",
    "I_VERSIO": "Version of the perceptron file format",
    "I_PREPRO": "Identification of the pre-processing function",
    "I_POSTPR": "Identification of the post-processing function",
    "I_HLAYER": "Number of hidden layers",
}

#: Per-parameter keywords (suffixed by the parameter number), with their comments.
PARAMETER_KEYWORDS = {
    "I_P_NM": "name",
    "I_P_UN": "unit",
    "I_P_LB": "lower bound",
    "I_P_HB": "higher bound",
    "I_P_ST": "step for numerical derivation",
    "I_PR_B": "Mean of the {name}",
    "I_PR_S": "Std of the {name}",
}

#: Keywords that structure the file and are rebuilt on writing (never kept in meta).
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "EXTNAME",
               "CRPIX1", "CTYPE1", "CRVAL1", "CDELT1", "CD1_1", "CUNIT1", "PCOUNT", "GCOUNT",
               "XTENSION", "BSCALE", "BZERO"}



def as_cards(meta):
    """Provenance cards as (keyword, value, comment) triples; the comment may be left out."""
    return tuple((tuple(card) + ("",))[:3] for card in meta)


def _open(path):
    """Open a FITS file fully into memory, turning every failure into one clear error."""
    if not os.path.exists(path):
        raise InterpolatorFileError(path, "no such file; check the path (ulyss-ann info --help)")
    if os.path.isdir(path):
        raise InterpolatorFileError(path, "is a directory, expected an interpolator FITS file")
    with open(path, "rb") as handle:
        looks_like_fits = handle.read(9) == b"SIMPLE  ="
    if looks_like_fits:
        _check_declared_sizes(path)
    try:
        with warnings.catch_warnings():
            # astropy only warns about truncation and bad header padding: make them errors.
            warnings.simplefilter("error")
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
            for hdu in hdul:  # force the data in: truncation shows up here
                hdu.data
    except (OSError, ValueError, TypeError, IndexError, Warning) as exc:
        if not looks_like_fits:
            why = "is not a FITS file (no SIMPLE card at its start); expected a ULySS perceptron interpolator"
        else:
            why = ("is truncated or corrupt (shorter than its headers announce, or a damaged header: "
                   f"{first_line(exc, 80)}); copy or download it again")
        raise InterpolatorFileError(path, why) from None
    return hdul


def _check_declared_sizes(path):
    """Refuse, from the headers alone, a file shorter than they declare or over the memory budget
    (:mod:`~ulyss_ann.model.limits`): reading it would allocate what the headers say."""
    try:
        hdus = declared_data(path)
    except (OSError, ValueError, TypeError, IndexError, KeyError, Warning) as exc:
        raise InterpolatorFileError(path, "is truncated or corrupt (shorter than its headers announce, or a damaged "
                                          f"header: {first_line(exc, 80)}); copy or download it again") from None
    problem = truncation(path, hdus)
    if problem:
        raise InterpolatorFileError(path, f"is {problem}")
    values, limit = sum(hdu.values for hdu in hdus), max_model_values()
    if values > limit:
        raise InterpolatorFileError(path, f"its headers declare {values:.3g} values ({values * 8 / 2**30:.1f} GiB as "
                                          f"float64), over the memory budget of {limit} for an interpolator; raise "
                                          f"{MAX_MODEL_VALUES_VARIABLE} if the network is genuinely that large")


def _get(path, hdu, index, key, kind=None):
    """Header value of ``key`` in ``hdu``, or an error naming the HDU and keyword."""
    header = hdu.header
    if key not in header:
        raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): missing keyword {key}")
    value = header[key]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): keyword {key} = {value!r}, "
                                              "expected a finite number")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): keyword {key} = {value!r}, "
                                              "expected an integer")
        return int(value)
    if kind is str:
        return str(value).strip()
    return value


def not_a_perceptron(path):
    """The one line for a FITS file that is no perceptron file at all: most often a spectrum given as the model."""
    from ulyss_ann.model.bundled import bundled_names

    return InterpolatorFileError(path, "not a ULySS perceptron (interpolator) file (no I_VERSIO keyword in HDU 0); "
                                       "is it a spectrum? give the network as the model (-m; bundled: "
                                       f"{', '.join(bundled_names())})")


def _layer_hdus(path, hdul):
    """The image HDUs carrying ``I_LAYER``, checked for version, in application order."""
    # A primary header without any I_ keyword is another kind of FITS file (a spectrum, an image), not a
    # damaged perceptron file, whose missing keyword is worth naming.
    if not any(key.startswith("I_") for key in hdul[0].header):
        raise not_a_perceptron(path)
    layers = {}
    for index, hdu in enumerate(hdul):
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):
            continue
        if index > 0 and "I_LAYER" not in hdu.header:
            continue  # an extra image that is not a layer: not ours to judge
        version = _get(path, hdu, index, "I_VERSIO", str)
        if version != FORMAT_VERSION:
            raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): I_VERSIO = '{version}', "
                                              f"this reader knows version '{FORMAT_VERSION}'")
        number = _get(path, hdu, index, "I_LAYER", int)
        if number in layers:
            raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): I_LAYER = {number} "
                                              f"repeats HDU {layers[number][0]}")
        layers[number] = (index, hdu)
    return [layers[k] for k in sorted(layers)]


def _parameters(path, index, hdu):
    """Parameter descriptions from the per-parameter keywords of one HDU."""
    params = []
    n = 1
    while f"I_P_NM{n}" in hdu.header:
        # Names and units are data: they are checked here, and written into GDL code
        # only as escaped literals (ulyss_ann.gdl.literals), never as they come.
        name = _get(path, hdu, index, f"I_P_NM{n}", str)
        unit = _get(path, hdu, index, f"I_P_UN{n}", str)
        for key, problem in ((f"I_P_NM{n}", check_parameter_name(name)), (f"I_P_UN{n}", check_parameter_unit(unit))):
            if problem:
                raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): keyword {key}: {problem}")
        values = {k: _get(path, hdu, index, f"{k}{n}", float)
                  for k in ("I_P_LB", "I_P_HB", "I_P_ST", "I_PR_B", "I_PR_S")}
        if values["I_P_LB"] > values["I_P_HB"]:
            raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): I_P_LB{n} > I_P_HB{n}, "
                                              "lower bound above the higher bound")
        _check_scaling(path, f"HDU {index} ({hdu.name})", n, values)
        params.append(Parameter(name=name, unit=unit,
                                low=values["I_P_LB"], high=values["I_P_HB"], step=values["I_P_ST"],
                                mean=values["I_PR_B"], scale=values["I_PR_S"]))
        n += 1
    if not params:
        raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): missing keyword I_P_NM1 "
                                          "(no parameter is described)")
    _check_distinct_names(path, f"HDU {index} ({hdu.name})", params)
    return tuple(params)


#: How far the input scaling I_PR_Sn and the derivative step I_P_STn may stray from the
#: parameter's range (I_P_HBn - I_P_LBn) before they are nonsense: the authors' files
#: hold range/scale of 3 to 4 and range/step of 300 to 4500. A scale of 1e-300 makes
#: every standardised input overflow, one of 1e300 makes the network blind to its
#: parameter, a zero step makes ULySS's finite differences zero: each fit would then
#: return the starting guess as converged, or another answer than the network's.
SCALE_RATIO = 1e6
STEP_RATIO = 1e9


def _check_scaling(path, where, n, values):
    """InterpolatorFileError naming the keyword when parameter ``n``'s input scaling or step is nonsense."""
    span = values["I_P_HB"] - values["I_P_LB"]
    span = span if span > 0 else max(abs(values["I_P_HB"]), 1.0)  # a parameter of one value: its magnitude
    scale, step = values["I_PR_S"], values["I_P_ST"]
    if not (scale > 0 and span / SCALE_RATIO <= scale <= span * SCALE_RATIO):
        raise InterpolatorFileError(path, f"{where}: I_PR_S{n} = {scale!r}, the input scaling (standard "
                                          f"deviation of the training values) must be > 0 and within a factor "
                                          f"{SCALE_RATIO:g} of the parameter's range {span:g} (I_P_HB{n} - I_P_LB{n})")
    if not (step > 0 and span / STEP_RATIO <= step <= span):
        raise InterpolatorFileError(path, f"{where}: I_P_ST{n} = {step!r}, the step for numerical derivatives "
                                          f"must be > 0, at most the parameter's range {span:g} and at least "
                                          f"1/{STEP_RATIO:g} of it")


def _check_distinct_names(path, where, params):
    """InterpolatorFileError when two parameters share a name (names are matched case-insensitively)."""
    seen = {}
    for n, p in enumerate(params, start=1):
        first = seen.setdefault(p.name.lower(), n)
        if first != n:
            raise InterpolatorFileError(path, f"{where}: I_P_NM{n} = '{p.name}' repeats I_P_NM{first} "
                                              f"= '{params[first - 1].name}'; each parameter needs its own name")


def _check_layers(path, layers, nhidden, inputs):
    """Weights, activations and consistency of the chain of layers (``inputs``: the first layer's, after
    the input map)."""
    weights, activations = [], []
    if len(layers) != nhidden + 1:
        raise InterpolatorFileError(path, f"I_HLAYER = {nhidden} announces {nhidden + 1} layers, "
                                          f"the file holds {len(layers)} layer HDUs")
    width = inputs
    for k, (index, hdu) in enumerate(layers, start=1):
        where = f"HDU {index} ({hdu.name})"
        number = _get(path, hdu, index, "I_LAYER", int)
        if number != k:
            raise InterpolatorFileError(path, f"{where}: I_LAYER = {number}, expected {k} "
                                              f"(layers must be numbered 1..{nhidden + 1})")
        if _get(path, hdu, index, "I_HLAYER", int) != nhidden:
            raise InterpolatorFileError(path, f"{where}: I_HLAYER differs from HDU 0's {nhidden}")
        activation = _get(path, hdu, index, "I_AFUNC", str).lower()
        if activation not in ACTIVATIONS:
            raise InterpolatorFileError(path, f"{where}: I_AFUNC = '{activation}' is not a known "
                                              f"activation (known: {', '.join(ACTIVATIONS)})")
        data = hdu.data
        if data is None or data.ndim != 2:
            raise InterpolatorFileError(path, f"{where}: expected a 2-D weight array, found "
                                              f"{'no data' if data is None else f'{data.ndim}-D data'}")
        if data.shape[0] != width + 1:
            raise InterpolatorFileError(path, f"{where}: weight array has {data.shape[0]} rows "
                                              f"(NAXIS2), expected {width + 1} = bias + {width} "
                                              "inputs from the previous layer")
        w = np.array(data, dtype=np.float64)  # native byte order, a copy we own
        if not np.all(np.isfinite(w)):
            bad = np.count_nonzero(~np.isfinite(w))
            raise InterpolatorFileError(path, f"{where}: {bad} weights are NaN or infinite")
        w.flags.writeable = False
        weights.append(w)
        activations.append(activation)
        width = w.shape[1]
    return tuple(weights), tuple(activations)


def read_perceptron(path):
    """Read a perceptron interpolator file into the keyword arguments of :class:`Interpolator`.

    Raises
    ------
    InterpolatorFileError
        For a missing, non-FITS, truncated or malformed file, naming the HDU and keyword.
    """
    from ulyss_ann.model.wavelength import WavelengthGrid

    path = os.fspath(path)
    with _open(path) as hdul:
        layers = _layer_hdus(path, hdul)
        if not layers:
            raise not_a_perceptron(path)
        index0, output = layers[-1]
        if index0 != 0:
            raise InterpolatorFileError(path, f"the output layer (highest I_LAYER) is HDU {index0}, "
                                              "expected HDU 0 (TERM_WEIGHTS)")
        nhidden = _get(path, output, 0, "I_HLAYER", int)
        prepro = _get(path, output, 0, "I_PREPRO", str)
        if prepro not in INPUT_MAPS:
            raise InterpolatorFileError(path, f"HDU 0: I_PREPRO = '{prepro}', expected 'linscale' "
                                              f"(or this package's {', '.join(list(INPUT_MAPS)[1:])})")
        postpro = _get(path, output, 0, "I_POSTPR", str)
        if postpro:
            raise InterpolatorFileError(path, f"HDU 0: I_POSTPR = '{postpro}', expected empty "
                                              "(no post-processing is defined in format 0.0.3)")
        parameters = _parameters(path, 0, output)
        for index, hdu in layers[:-1]:
            if _parameters(path, index, hdu) != parameters:
                raise InterpolatorFileError(path, f"HDU {index} ({hdu.name}): parameter keywords "
                                                  "differ from HDU 0's")
        problem = INPUT_MAPS[prepro].problem(parameters)
        if problem:
            raise InterpolatorFileError(path, f"HDU 0: I_PREPRO = '{prepro}': {problem}")
        weights, activations = _check_layers(path, layers, nhidden, INPUT_MAPS[prepro].width(len(parameters)))
        try:
            wavelength = WavelengthGrid.from_header(output.header, npix=weights[-1].shape[1])
        except KeyError as exc:
            raise InterpolatorFileError(path, f"HDU 0: missing keyword {exc.args[0]} "
                                              "(the wavelength WCS of the output pixels)") from None
        except ValueError as exc:
            raise InterpolatorFileError(path, f"HDU 0: {exc}") from None
        meta = [(card.keyword, card.value, card.comment) for card in output.header.cards
                if card.keyword not in _STRUCTURAL and not card.keyword.startswith("I_")]
        nodes = _read_nodes(path, hdul, parameters)
    medium, medium_source = medium_from_header(output.header)  # what the file says; Interpolator.read may know better
    return dict(parameters=parameters, weights=weights, activations=activations, wavelength=wavelength,
                meta=tuple(meta), nodes=nodes, medium=medium, medium_source=medium_source, input_map=prepro)


def _read_nodes(path, hdul, parameters):
    """The training nodes (n x npar) from the optional NODES table, or None."""
    if "NODES" not in hdul or not isinstance(hdul["NODES"], fits.BinTableHDU):
        return None
    data = hdul["NODES"].data
    names = {n.lower(): n for n in data.columns.names}
    missing = [p.name for p in parameters if p.name.lower() not in names]
    if missing:
        raise InterpolatorFileError(path, f"HDU NODES: no column for {', '.join(missing)}")
    nodes = np.column_stack([np.asarray(data[names[p.name.lower()]], dtype=float) for p in parameters])
    if nodes.size == 0 or not np.all(np.isfinite(nodes)):
        raise InterpolatorFileError(path, "HDU NODES: empty, or NaN in the node parameters")
    return nodes


def _layer_header(interp, number, wcs=False):
    """Header cards of layer ``number`` (1-based), in the authors' keyword order."""
    nhidden = len(interp.weights) - 1
    name = "TERM_WEIGHTS" if number == nhidden + 1 else f"HIDDEN_LAYER_{number}"
    cards = [("EXTNAME", name, "extension name")]
    if wcs:
        cards += interp.wavelength.header_cards()
    # "No post-processing" is written as the authors' files write it (12 blanks, which
    # FITS readers take as ''), so that rewriting their files reproduces them byte for byte.
    values = {"I_AFUNC": interp.activations[number - 1], "I_LAYER": number,
              "I_VERSIO": FORMAT_VERSION, "I_PREPRO": interp.input_map, "I_POSTPR": " " * 12,
              "I_HLAYER": nhidden}
    cards += [(key, values[key], comment) for key, comment in LAYER_KEYWORDS.items()]
    for n, p in enumerate(interp.parameters, start=1):
        values = {"I_P_NM": p.name, "I_P_UN": p.unit, "I_P_LB": p.low, "I_P_HB": p.high,
                  "I_P_ST": p.step, "I_PR_B": p.mean, "I_PR_S": p.scale}
        cards += [(f"{key}{n}", values[key], comment.format(name=p.name))
                  for key, comment in PARAMETER_KEYWORDS.items()]
    return cards


def write_perceptron(interp, path, overwrite=False):
    """Write ``interp`` in the perceptron format; :func:`read_perceptron` reads it back bit-exactly."""
    nlayers = len(interp.weights)
    primary = fits.PrimaryHDU(np.asarray(interp.weights[-1], dtype=">f8"))
    for card in _layer_header(interp, nlayers, wcs=True):
        primary.header.append(card)
    for key, value, comment in interp.meta:
        primary.header.append((key, value, comment))
    hdus = [primary]
    for number in range(nlayers - 1, 0, -1):
        hdu = fits.ImageHDU(np.asarray(interp.weights[number - 1], dtype=">f8"))
        for card in _layer_header(interp, number):
            hdu.header.append(card)
        hdus.append(hdu)
    if interp.nodes is not None:
        columns = [fits.Column(name=p.name, format="D", unit=p.unit or None, array=interp.nodes[:, i])
                   for i, p in enumerate(interp.parameters)]
        hdus.append(fits.BinTableHDU.from_columns(columns, name="NODES"))
    try:
        fits.HDUList(hdus).writeto(os.fspath(path), overwrite=overwrite)
    except OSError as exc:
        raise InterpolatorFileError(path, f"cannot write: {exc}") from None
