"""What every figure of the package shares: a Figure made without pyplot, labels, saving.

Figures are made with matplotlib's object API (``matplotlib.figure.Figure``): no
global state is touched, the backend of a notebook or an application is never
changed, and a function that draws returns its Figure for the caller to show, adjust
or save. :func:`save_figure` writes one to a file (PNG, PDF, SVG…) with the canvas its
format needs, which is how the command line and the scripts save without a display.
"""

from ulyss_ann.errors import UlyssAnnError

import math

__all__ = ["new_figure", "save_figure", "check_figure_path", "parameter_label", "value_with_error"]

_PRETTY = {"teff": r"$T_\mathrm{eff}$", "logg": "log g", "fe/h": "[Fe/H]", "alpha/fe": r"[$\alpha$/Fe]",
           "rms": "residual rms (relative)"}


def parameter_label(name):
    """How astronomers write a parameter name: Teff -> T_eff, Fe/H -> [Fe/H]."""
    return _PRETTY.get(name.lower(), name)


#: Beyond this many decimals :func:`value_with_error` writes ``5 ± 1e-17`` rather than fixed point.
MAX_DECIMALS = 8


def value_with_error(value, error, unit="", fixed=False):
    """``value ± error unit`` with both to the decimal place of the error's second significant digit.

    ``5498.5, 29.3`` -> ``5498 ± 29``; ``-2.0899, 0.0571`` -> ``-2.090 ± 0.057``; ``5503, 293``
    -> ``5500 ± 290``. Two digits of the error, as is customary (the Particle Data Group quotes
    one or two); digits of the value beyond the error's are noise, and fewer hide what it says. A
    ``fixed`` parameter reads ``3.7 dex (fixed)``; one without an error (0 or NaN: MPFIT gives 0
    at a bound, the LOSVD width at its floor) shows its value alone, to 5 significant digits.
    One helper for the fit's summary, its repr and the figure titles, so they never disagree.
    """
    unit = f" {unit}" if unit else ""
    if fixed:
        return f"{value:.5g}{unit} (fixed)"
    if not (math.isfinite(error) and error > 0 and math.isfinite(value)):
        return f"{value:.5g}{unit}"
    # the place of the second significant digit, taken after rounding the error to two
    # digits, so that 0.0996 reads 0.10 (two digits), not 0.100
    place = 1 - math.floor(math.log10(error))
    error = round(error, place)
    place = 1 - math.floor(math.log10(error))
    decimals = max(place, 0)
    if decimals > MAX_DECIMALS or max(abs(value), error) >= 1e7:
        # an error far below the value (a noise-free simulated spectrum) or huge numbers: fixed
        # point would print tens of digits into a figure title
        return f"{value:.6g} ± {error:.2g}{unit}"
    value = round(value, place) + 0.0  # + 0.0: -0.001 ± 0.5 reads 0.00 ± 0.50, not -0.00
    return f"{value:.{decimals}f} ± {error:.{decimals}f}{unit}"


def new_figure(figure=None, **options):
    """``figure`` if given (cleared), else a new ``matplotlib.figure.Figure(**options)``."""
    if figure is not None:
        figure.clear()
        return figure
    from matplotlib.figure import Figure

    options.setdefault("layout", "constrained")
    return Figure(**options)


def save_figure(figure, path, dpi=110):
    """Write ``figure`` to ``path`` (format from the extension); a bad path or format is one clear error."""
    try:
        figure.savefig(path, dpi=dpi)
    except (OSError, ValueError) as exc:
        raise UlyssAnnError(f"{path}: cannot write the figure: {exc}") from None
    return path


def check_figure_path(path, option):
    """Refuse, before any work, a figure name matplotlib cannot write (one line naming ``option``)."""
    import os

    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    extension = os.path.splitext(str(path))[1][1:].lower()
    if extension not in formats:
        raise UlyssAnnError(f"{option} {path}: not a figure format matplotlib writes; end it in .png, .pdf or .svg")
    folder = os.path.dirname(os.path.abspath(str(path)))
    if not os.path.isdir(folder):
        raise UlyssAnnError(f"{option} {path}: the folder {folder} does not exist")
    return path
