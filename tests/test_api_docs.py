"""The API reference builds without a warning, and documents every public name with its sections.

``scripts/build_api_docs`` builds docs/api (Sphinx + numpydoc) with warnings as errors; numpydoc's
validation there makes a missing Parameters or Returns section of a public function or method a warning.
This test runs that build and reads the page it writes: every name of ``ulyss_ann.__all__`` has its entry,
and the entry of each one that takes parameters has its Parameters section (a result's fields its
Attributes), so that a new public name cannot be left out of the reference or come without sections.
"""

import dataclasses
import importlib.util
import inspect
import os
import re
import subprocess
import sys

import pytest

import ulyss_ann
from conftest import PROJECT

MISSING = [name for name in ("sphinx", "numpydoc") if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no {' or '.join(MISSING)}: the API reference needs the docs "
                                                      "extra (pip install 'ulyss_ann[docs]'; ./scripts/setup has it)")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The HTML page of the reference, built as scripts/build_api_docs builds it, with this interpreter."""
    out = tmp_path_factory.mktemp("api-html")
    run = subprocess.run([str(PROJECT / "scripts" / "build_api_docs"), str(out)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=sys.executable), timeout=300)
    assert run.returncode == 0, f"scripts/build_api_docs failed:\n{run.stdout}\n{run.stderr}"
    return (out / "index.html").read_text()


def entry(page, name):
    """The HTML of the entry of ``ulyss_ann.<name>``'s own docstring (up to its first member's entry)."""
    found = re.search(rf'id="ulyss_ann\.{re.escape(name)}"', page)
    assert found, f"the API reference has no entry for ulyss_ann.{name}"
    rest = page[found.end():]
    end = min((m.start() for m in (re.search(r'<dl class="py ', rest), re.search(r'id="ulyss_ann\.', rest)) if m),
              default=len(rest))
    return rest[:end]


def section(html, title):
    return re.search(rf'<dt class="field-(odd|even)">{title}<', html) is not None


def own_parameters(value):
    """The named parameters ``value`` takes (a class: its constructor's), without ``*args``/``**kwargs``."""
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_reference_builds_without_a_warning_and_has_every_public_name_with_its_sections(reference):
    lacking = []
    for name in ulyss_ann.__all__:
        html = entry(reference, name)
        value = getattr(ulyss_ann, name)
        if not own_parameters(value):
            continue
        # a result object, built by the engines and read by users: its fields as Attributes
        wanted = "Attributes" if name == "FitResult" else "Parameters"
        if not section(html, wanted):
            lacking.append(f"{name} ({wanted})")
        if inspect.isfunction(value) and not section(html, "Returns"):
            lacking.append(f"{name} (Returns)")
    assert not lacking, f"entries of the API reference without their sections: {lacking}"
    fields = undocumented_fields()
    assert not fields, f"dataclass fields missing from their class's Parameters/Attributes: {fields}"


def undocumented_fields():
    """Public dataclass -> its fields that neither its Parameters nor its Attributes section names."""
    from numpydoc.docscrape import ClassDoc

    undocumented = {}
    for name in ulyss_ann.__all__:
        value = getattr(ulyss_ann, name)
        if inspect.isclass(value) and dataclasses.is_dataclass(value):
            doc = ClassDoc(value, config={"show_class_members": False})
            items = doc["Parameters"] + doc["Attributes"]
            documented = {part.strip() for item in items for part in item.name.split(",")}
            missing = [f.name for f in dataclasses.fields(value) if f.name not in documented]
            if missing:
                undocumented[name] = missing
    return undocumented

