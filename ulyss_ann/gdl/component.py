"""Generate a ULySS component, in GDL, specialised to one interpolator file.

``generate_component(interp, "gslann", "outdir")`` renders the Jinja templates of
``ulyss_ann/gdl/templates/`` into, for a component called NAME:

* ``NAME.pro`` — the constructor, ``cmp = NAME(TG=…, LG=…, ZG=…, FIXPAR=…)``,
  like ``uly_tgm`` (several guesses per parameter allowed);
* ``NAME_init.pro`` — run by ULySS before each fit: log-rebins the linear output
  layer once per (wavelength range, velocity scale) and caches it;
* ``NAME_evaldata.pro`` — the arrays of a forward pass, one tag per layer;
* ``NAME_eval.pro`` — the forward pass, unrolled for this network's layers;
* ``NAME_spectrum.pro`` — ``flux = NAME_spectrum([Teff, logg, feh])`` on the
  network's own grid;

and copies beside them the interpolator file (``NAME.fits``, the default
``MODEL_FILE``) and the hand-written routines of ``ulyss_ann/gdl/pro/`` they call, so that the
folder works on its own once it is on ``GDL_PATH``.
"""

import os
import shutil
from importlib import resources
from pathlib import Path

from ulyss_ann.version import __version__
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.gdl.literals import (GDLCode, check_gdl_path, gdl_comment, gdl_identifier, gdl_number, gdl_string,
                           is_plain_code)
from ulyss_ann.gdl.reserved_names import check_component_name

__all__ = ["generate_component", "resource_dir", "default_install_dir", "guess_keywords", "converted_axis"]

_TEMPLATES = {
    "{name}.pro": "component.pro.j2",
    "{name}_init.pro": "component_init.pro.j2",
    "{name}_evaldata.pro": "component_evaldata.pro.j2",
    "{name}_eval.pro": "component_eval.pro.j2",
    "{name}_spectrum.pro": "component_spectrum.pro.j2",
}

#: ULySS's keyword letters (uly_tgm: TG/TL, LG/LL, ZG/ZL) for the usual parameter names.
_KEYWORD_LETTER = {"teff": "T", "logg": "L", "fe/h": "Z", "feh": "Z", "m/h": "Z", "alpha/fe": "A"}


def resource_dir(kind):
    """Folder of the package's hand-written GDL (``kind="gdl"``: ``ulyss_ann/gdl/pro``) or of its
    Jinja templates (``"templates"``: ``ulyss_ann/gdl/templates``), wherever the package is
    installed (editable, a wheel in a venv, ``pip install --user``): package data, found
    through :mod:`importlib.resources`. GDL reads them from disk, so they must be files."""
    folder = resources.files("ulyss_ann.gdl") / {"gdl": "pro", "templates": "templates"}[kind]
    if not isinstance(folder, Path) or not folder.is_dir():
        raise UlyssAnnError(f"the package's GDL {kind} ({folder}) are not files on disk; reinstall ulyss_ann "
                            "from a wheel or a source tree (not a zip)")
    return folder


def default_install_dir(name):
    """Where ``gdl-export --install`` puts a component: ``$XDG_DATA_HOME/ulyss_ann/gdl/NAME``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ulyss_ann" / "gdl" / name


def guess_keywords(names):
    """Constructor keywords (guess, limits) for each parameter: TG/TL, LG/LL, ZG/ZL, else PnG/PnL."""
    keywords, used = [], set()
    for n, name in enumerate(names, start=1):
        letter = _KEYWORD_LETTER.get(name.lower())
        if letter is None or letter in used:
            letter = f"P{n}"
        used.add(letter)
        keywords.append((letter + "G", letter + "L"))
    return keywords


def _context(interp, name, model_file):
    if not interp.inputs.perceptron:   # GDL's reader applies linscale only (ulyss_ann_read_network)
        raise UlyssAnnError(f"{interp.path or 'this model'}: its input map '{interp.input_map}' is not a "
                            "perceptron's; fit it with --engine native (ULySS's own TGM component is uly_tgm)")
    params = []
    for i, (p, (gkw, lkw)) in enumerate(zip(interp.parameters, guess_keywords(interp.names))):
        # name/unit: raw text, to be written through the gdl_string or gdl_comment filter
        params.append(dict(index=i, name=p.name, unit=p.unit, guess_kw=gkw, limit_kw=lkw,
                           low=gdl_number(p.low), high=gdl_number(p.high), step=gdl_number(p.step),
                           default_guess=gdl_number(p.mean), default_guess_doc=f"{p.mean:.6g}",
                           low_doc=f"{p.low:g}", high_doc=f"{p.high:g}"))
    keyword_list = ", ".join([f"{p['guess_kw']}={p['guess_kw'].lower()}" for p in params]
                             + [f"{p['limit_kw']}={p['limit_kw'].lower()}" for p in params])
    example = ", ".join(f"{p['guess_kw']}={v}" for p, v in zip(params, _example_values(interp, True)))
    return dict(name=name, NAME=name.upper(), version=__version__, keyword_list=keyword_list, model_file=str(model_file),
                model_basename=os.path.basename(interp.path or str(model_file)),
                architecture=interp.architecture, nlayer=len(interp.weights),
                activations=list(interp.activations), parameters=params, npix=interp.npix,
                # our own text, in the ASCII a GDL source file holds (en dash, Angstrom sign)
                wavelength=interp.wavelength.describe().split(", ", 1)[0].replace("\u2013", "-").replace("\u00c5", "A"),
                air=interp.wavelength.air, axis=converted_axis(interp),
                surrogate=interp.is_surrogate, example_call=example,
                example_values=_example_values(interp, False))


def converted_axis(interp):
    """The converted (start, step) the component puts in place of its file's, or None (see component_axis.pro.j2)."""
    if interp.medium_conversion is None:
        return None
    from astropy.io import fits

    from ulyss_ann.model.medium import axis_residual_kms, other_medium
    from ulyss_ann.model.wavelength import WavelengthGrid

    file_grid = WavelengthGrid.from_header(fits.getheader(interp.path, 0), npix=interp.npix)
    grid = interp.wavelength
    if grid == file_grid:
        return None
    start = lambda g: g.crval + (1.0 - g.crpix) * g.cdelt  # noqa: E731 - ulyss_ann_read_network's start
    # ASCII in GDL comments: the arrow of the table's note would be escaped as \u2192 there
    return dict(note=interp.medium_conversion.replace("→", " to "), file_start=gdl_number(start(file_grid)),
                file_step=gdl_number(file_grid.cdelt), start=gdl_number(start(grid)), step=gdl_number(grid.cdelt),
                residual=f"{axis_residual_kms(file_grid, other_medium(interp.medium), interp.medium):.2f}")


def _example_values(interp, several):
    """Guesses to show in examples: the paper's for GSL-like networks, else the grid means."""
    paper = {"teff": "[5000,5500,6000]" if several else "5000", "logg": "2", "fe/h": "[-1,-1.5]" if several else "-1.5"}
    if [n.lower() for n in interp.names] == ["teff", "logg", "fe/h"]:
        return [paper[n.lower()] for n in interp.names]
    return [f"{p.mean:g}" for p in interp.parameters]


def _only_safe_text(value):
    """Jinja's last word on every ``{{ … }}``: outside text must have gone through a filter.

    Escaped text (:class:`GDLCode`, from ``gdl_string``/``gdl_comment``) and numbers
    pass; any other string must be plain code (no quote, separator, newline or
    non-ASCII character), else rendering stops. A template that forgets to escape a
    new outside string therefore fails in the tests instead of writing unsafe code.
    """
    if isinstance(value, (GDLCode, int, float)) or value is None:
        return value
    text = str(value)
    if not is_plain_code(text):
        raise UlyssAnnError(f"internal: template value {text!r} reached GDL code unescaped "
                            "(use the gdl_string or gdl_comment filter)")
    return text


def generate_component(interp, name, outdir, copy_model=True, final_dir=None):
    """Write the GDL component ``name`` for ``interp`` into ``outdir``; return the files written.

    Parameters
    ----------
    interp : Interpolator
        The network (read from a file: its ``path`` is copied beside the code).
    name : str
        GDL name of the component (letters, digits, underscore; starts with a letter).
    outdir : path-like
        Created if needed; files of the same names are replaced.
    copy_model : bool
        Copy the interpolator file as ``NAME.fits`` and make it the default
        ``MODEL_FILE``; otherwise the generated code points at ``interp.path``.
    final_dir : path-like, optional
        Where the folder will be moved after writing (an atomic publish): the
        default ``MODEL_FILE`` then points there.
    """
    import jinja2

    name = gdl_identifier(name, "--name").lower()
    check_component_name(name)  # not a name GDL, ULySS or this package already gives a routine
    if interp.path is None:
        raise UlyssAnnError("the interpolator must come from a file (Interpolator.read)")
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    model_file = outdir / f"{name}.fits"
    if copy_model:
        if Path(interp.path).resolve() != model_file:
            shutil.copyfile(interp.path, model_file)
    else:
        model_file = Path(interp.path).resolve()
    if copy_model and final_dir is not None:
        model_file = Path(final_dir).resolve() / model_file.name
    # GDL opens this path as written into the code: refuse one it would expand or split.
    check_gdl_path(model_file, "interpolator file" if not copy_model else "component folder's file")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, finalize=_only_safe_text)
    env.filters["gdl_string"] = gdl_string
    env.filters["gdl_comment"] = gdl_comment
    context = _context(interp, name, model_file)
    written = []
    for pattern, template in _TEMPLATES.items():
        path = outdir / pattern.format(name=name)
        path.write_text(env.get_template(template).render(context))
        written.append(path)
    for pro in sorted(resource_dir("gdl").glob("*.pro")):
        shutil.copyfile(pro, outdir / pro.name)
        written.append(outdir / pro.name)
    if copy_model:
        written.append(outdir / model_file.name)
    return written
