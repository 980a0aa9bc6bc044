"""The options every command spells the same way: the interpolator ``-m/--model``, ``--dashboard``.

``-m/--model MODEL`` names the interpolator in every command that takes one: a file, or
a bundled name (``example``, ``miles``: :mod:`ulyss_ann.model.bundled`; an existing
file of that name wins). ``info``, ``eval`` and ``gdl-export`` still accept the model
as their first positional argument, as before ``-m`` existed: hidden from the usage,
with one line on stderr saying to use ``-m``; both at once is an error.
"""

import argparse
import shlex
import sys

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.bundled import bundled_names, bundled_path, interpolator_file

__all__ = ["MODEL_KINDS", "add_model_option", "add_dashboard_option", "given_model", "model_file", "reference_model",
           "take_positional_model"]

#: How a help text names what MODEL may be.
MODEL_KINDS = f"file or bundled name ({', '.join(bundled_names())})"

_LEGACY = "deprecated_model"


def add_model_option(parser, default_text="example, the bundled example interpolator", what="interpolator",
                     positional_too=False):
    """``-m/--model MODEL`` (None when not given: each command says what it then uses, ``default_text``;
    None: no default); ``positional_too``: also the deprecated positional MODEL, hidden."""
    said = f"default: {default_text}" if default_text else "no default"
    parser.add_argument("-m", "--model", metavar="MODEL", help=f"{what}: {MODEL_KINDS}; {said}")
    if positional_too:
        parser.add_argument(_LEGACY, nargs="?", metavar="MODEL", help=argparse.SUPPRESS)


def add_dashboard_option(parser):
    parser.add_argument("--dashboard", action="store_true",
                        help="print the link of the Dask dashboard once the cluster is up (even with --quiet; "
                             "with --scheduler: that scheduler's)")


def given_model(args):
    """The MODEL the command line gives (-m, or the deprecated positional, said on stderr), or None."""
    take_positional_model(args)
    return args.model


def take_positional_model(args):
    """The deprecated positional MODEL, if given, moved to ``args.model`` (one line on stderr says so)."""
    legacy = getattr(args, _LEGACY, None)
    if legacy is not None:
        if args.model is not None:
            raise UlyssAnnError(f"the model is given twice, {legacy!r} and -m {args.model!r}: give it once, "
                                "as -m MODEL")
        print(f"ulyss-ann: warning: MODEL as a positional argument is deprecated: use -m {shlex.quote(legacy)}",
              file=sys.stderr)
        args.model = legacy
        setattr(args, _LEGACY, None)


def reference_model(args, reference, role):
    """``-m`` resolved, or the authors' ``reference`` network (a
    :class:`~ulyss_ann.model.reference_names.ReferenceFile`, found where
    :mod:`ulyss_ann.spectra.reference_files` looks) when -m was not given; a missing default says, in one
    line, that it was the default (``role``), where it was looked for and where to download it."""
    if given_model(args) is not None:
        return interpolator_file(args.model)
    from ulyss_ann.spectra.reference_files import require_reference

    return require_reference(reference, "-m FILE", f"the default {role}")


def model_file(args):
    """The interpolator file of the command line: -m (or the deprecated positional) resolved, else the
    bundled example.

    A missing file that is no bundled name stops the command in one line naming it and the
    bundled names.
    """
    model = given_model(args)
    return bundled_path("example") if model is None else interpolator_file(model)
