"""What every figure of the package shares: a Figure made without pyplot, labels, saving.

Figures are made with matplotlib's object API (``matplotlib.figure.Figure``): no
global state is touched, the backend of a notebook or an application is never
changed, and a function that draws returns its Figure for the caller to show, adjust
or save. :func:`save_figure` writes one to a file (PNG, PDF, SVG…) with the canvas its
format needs, which is how the command line and the scripts save without a display.
"""

from ulyss_ann.errors import UlyssAnnError

__all__ = ["new_figure", "save_figure", "check_figure_path", "parameter_label"]

_PRETTY = {"teff": r"$T_\mathrm{eff}$", "logg": "log g", "fe/h": "[Fe/H]", "alpha/fe": r"[$\alpha$/Fe]",
           "rms": "residual rms (relative)"}


def parameter_label(name):
    """How astronomers write a parameter name: Teff -> T_eff, Fe/H -> [Fe/H]."""
    return _PRETTY.get(name.lower(), name)


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
