"""Sphinx configuration of the API reference (built by ``scripts/build_api_docs``).

The reference documents the public API, the names of ``ulyss_ann.__all__``, from their
numpydoc docstrings. ``index.rst`` does not list the names by hand: the directive
``ulyss-ann-public-api`` below expands to one entry per name of ``__all__``, so that a
new public name cannot be left out of the reference. The build runs with warnings as
errors, and numpydoc's validation turns a missing Parameters or Returns section of a
public function or method into a warning.
"""

import inspect

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

import ulyss_ann

project = "ulyss_ann"
author = "ulyss_ann developers"
release = version = ulyss_ann.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
root_doc = "index"
exclude_patterns = []
html_theme = "alabaster"
html_static_path = []
# Offline (no intersphinx): the reference is built where no network is reached.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
# numpydoc would list a class's members through autosummary; autodoc's :members: does it here.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# What every public function, method and class must have (numpydoc's validation codes):
#   GL08 a docstring; PR01 every parameter documented; PR02 no documented parameter that is not one;
#   RT01 a Returns section, where the function or method returns something (numpydoc reads its source).
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "RT01"}

numpydoc_validation_exclude = {
    r"\.__init__$", r"\.__post_init__$",
    # properties made of lambdas (Interpolator.npar, .npix), which numpydoc's validation cannot locate in the
    # source (it stops the build); their one-line docstrings say what they are
    r"^ulyss_ann\.Interpolator\.np(ar|ix)$",
    # a result is read, not built: its fields are documented as Attributes (the test checks every one is)
    r"^ulyss_ann\.FitResult$",
}

# Cross-references (-n): the docstrings point into the package's modules, which the reference does not
# document (it documents the public API), and to a module's own helpers by their bare name (``der_noise``)
# or a dataclass's fields (``:attr:`units```, documented in its class's Parameters or Attributes); such
# targets are left plain. A public name that fails to resolve (``ulyss_ann.fit_spectum``) fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"~?\.?[A-Za-z_][A-Za-z0-9_]*"),
    (r"py:.*", r"(~)?ulyss_ann\.(model|spectra|fitting|gdl|training|paper|cli|figures|errors|version)(\..*)?"),
    (r"py:.*", r"(astropy|numpy|scipy|matplotlib|specutils|dask|distributed)(\..*)?"),
    (r"py:.*", r"(dataclasses|os|pathlib)\..*"),
]


def public_entries():
    """reST for each name of ``ulyss_ann.__all__``: a title and its autodoc directive."""
    lines = []
    for name in ulyss_ann.__all__:
        value = getattr(ulyss_ann, name)
        target = f"ulyss_ann.{name}"
        lines += [name, "-" * len(name), ""]
        if name == "__version__":
            lines += [f".. data:: {target}", "", f"   The package's version, a string ({value!r} here).", ""]
        elif inspect.isclass(value) and issubclass(value, BaseException):
            lines += [f".. autoexception:: {target}", ""]
        elif inspect.isclass(value):
            lines += [f".. autoclass:: {target}", ""]
        else:
            lines += [f".. autofunction:: {target}", ""]
    return lines


class PublicApi(Directive):
    """``.. ulyss-ann-public-api::``: a section per public name, in the order of ``__all__``."""

    def run(self):
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(public_entries(), source="ulyss_ann.__all__"), container)
        return container.children


def setup(app):
    app.add_directive("ulyss-ann-public-api", PublicApi)
    return {"parallel_read_safe": True}
