"""The one registry under the engines, the spectrum readers and the training recipes (ulyss_ann.registry):
names taken once, an unknown name in one line listing the others, lazy "module:Class" entries imported once on
first lookup, and installed packages' entry points read on the first lookup, a broken one one warning."""

import sys
import warnings

import pytest

from conftest import install_plugin
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.registry import RegistrationError, Registry

GROUP = "ulyss_ann.test_gadgets"  # a group of the tests' own: no installed package declares it


class Gadget:
    """What the tests register: anything with a name."""

    def __init__(self, name):
        self.name = name


def checked_gadget(item, name):
    """The tests' per-item check: a Gadget class from an entry point becomes its instance; anything else is refused."""
    if isinstance(item, type) and issubclass(item, Gadget):
        item = item(name)
    if not isinstance(item, Gadget):
        raise TypeError(f"{item!r} is no Gadget")
    return item


def gadgets(**options):
    return Registry("gadget", GROUP, check=checked_gadget, **options)


def test_a_name_is_taken_once_and_unregistering_frees_it():
    registry = gadgets()
    first = registry.register(Gadget("spanner"))
    with pytest.raises(RegistrationError, match=r"^gadget 'spanner' is registered already \(test_registry:Gadget\); "
                                                r"unregister it first$") as refused:
        registry.register(Gadget("spanner"))  # another instance, even of the same class
    assert isinstance(refused.value, UlyssAnnError) and isinstance(refused.value, ValueError)
    assert registry.register(first) is first and registry.get("spanner") is first  # the same one again: no conflict
    with pytest.raises(TypeError, match="^42 is no Gadget$"):
        registry.register(42)  # the per-item check
    with pytest.raises(RegistrationError, match="^gadget 'a gadget': give 'module:Class' and the gadget's name$"):
        registry.register("a gadget", "gadget")  # a string is a lazy "module:Class"
    registry.unregister("spanner")
    assert registry.names() == [] and "spanner" not in registry
    second = registry.register(Gadget("spanner"))
    assert registry.get("spanner") is second


def test_an_unknown_name_is_one_line_listing_the_registered_ones():
    registry = gadgets()
    registry.register(Gadget("spanner"))
    registry.register(Gadget("hammer"))
    with pytest.raises(UlyssAnnError) as refused:
        registry.get("drill")
    assert str(refused.value) == "gadget 'drill': none registered; registered: spanner, hammer"
    own = gadgets(unknown=lambda name: f"--gadget {name}: choose {', '.join(sorted(own))}")
    own.register(Gadget("spanner"))
    with pytest.raises(UlyssAnnError, match=r"^--gadget drill: choose spanner$"):
        own.get("drill")
    assert list(registry) == ["spanner", "hammer"]


def test_a_lazy_entry_is_imported_on_first_lookup_once(tmp_path, monkeypatch):
    (tmp_path / "lazy_gadgets.py").write_text("from test_registry import Gadget\nIMPORTS = [1]\n\n\n"
                                              "class Wrench(Gadget):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_gadgets", raising=False)
    calls = []
    registry = Registry("gadget", GROUP, check=lambda item, name: calls.append(name) or checked_gadget(item, name))
    registry.register("lazy_gadgets:Wrench", "wrench")
    registry.register("lazy_gadgets:NoSuchGadget", "ghost")
    assert "lazy_gadgets" not in sys.modules and isinstance(registry.peek("wrench"), str)  # named, not imported
    wrench = registry.get("wrench")
    assert type(wrench).__name__ == "Wrench" and wrench.name == "wrench"
    assert registry.get("wrench") is wrench and calls == ["wrench"]  # loaded and checked once
    assert sys.modules["lazy_gadgets"].IMPORTS == [1]
    with pytest.raises(UlyssAnnError) as refused:
        registry.get("ghost")
    assert str(refused.value) == ("gadget 'ghost': lazy_gadgets:NoSuchGadget does not load (AttributeError: "
                                  "module 'lazy_gadgets' has no attribute 'NoSuchGadget')")
    with pytest.raises(RegistrationError, match="^gadget 'lazy_gadgets:Wrench': give 'module:Class' and the gadget's"):
        registry.register("lazy_gadgets:Wrench")  # a lazy entry needs its name


@pytest.mark.parametrize("load_entry_points", [True, False])
def test_entry_points_are_read_on_first_lookup_and_a_broken_one_is_one_warning(tmp_path, monkeypatch,
                                                                              load_entry_points):
    module = f"plugged_gadgets_{int(load_entry_points)}"
    registry = gadgets(load_entry_points=load_entry_points)
    registry.register(Gadget("spanner"))
    # installed after the registry was made: read on the first lookup, not when it was made
    install_plugin(tmp_path, monkeypatch, module, """\
        from test_registry import Gadget


        class Pliers(Gadget):
            pass
        """, GROUP, [f"pliers = {module}:Pliers", f"broken = {module}:NoSuchGadget", f"spanner = {module}:Pliers"])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        names = registry.names()
        assert type(registry.get("pliers")).__name__ == "Pliers" and registry.get("spanner").name == "spanner"
    lines = [str(w.message) for w in said]
    taken = (f"gadget 'spanner = {module}:Pliers' ({GROUP}) left out: RegistrationError: gadget 'spanner' is "
             "registered already (test_registry:Gadget); unregister it first; fix or uninstall the package that "
             "declares it")
    if load_entry_points:  # loaded when read: the broken one is said then, and left out
        broken = (f"gadget 'broken = {module}:NoSuchGadget' ({GROUP}) left out: AttributeError: module "
                  f"'{module}' has no attribute 'NoSuchGadget'; fix or uninstall the package that declares it")
        assert names == ["spanner", "pliers"] and sorted(lines) == [broken, taken]
    else:  # lazy: named when read, refused in one line when looked up
        assert names == ["spanner", "pliers", "broken"] and lines == [taken]
        with pytest.raises(UlyssAnnError, match=f"^gadget 'broken': {module}:NoSuchGadget does not load "
                                                "\\(AttributeError: "):
            registry.get("broken")
    registry.unregister("pliers")
    assert "pliers" not in registry.names()  # read once: not read again by a lookup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry.refresh_entry_points()
    assert "pliers" in registry.names()
