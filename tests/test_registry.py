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


def test_loaded_leaves_out_an_entry_that_does_not_load_said_once_and_by_name_it_is_still_refused(tmp_path,
                                                                                                monkeypatch):
    (tmp_path / "half_gadgets.py").write_text("from test_registry import Gadget\n\n\nclass Saw(Gadget):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = gadgets()
    registry.register("half_gadgets:NoSuchGadget", "ghost")
    registry.register("half_gadgets:Saw", "saw")
    said = []
    for _ in range(2):  # said once, however often gone through
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [name for name, gadget in registry.loaded()] == ["saw"]
        said += [str(w.message) for w in caught]
    assert said == ["gadget 'ghost': half_gadgets:NoSuchGadget does not load (AttributeError: module 'half_gadgets' "
                    "has no attribute 'NoSuchGadget'); left out until it loads (fix or uninstall the package that "
                    "declares it)"]
    with pytest.raises(UlyssAnnError, match="^gadget 'ghost': half_gadgets:NoSuchGadget does not load "):
        registry.get("ghost")


def test_reachable_from_a_fresh_process_only_through_an_entry_point_or_the_home_package(tmp_path, monkeypatch):
    registry = gadgets(home="ulyss_ann")
    registry.register(Gadget("spanner"))  # an item of this session
    registry.register("my_gadgets:Drill", "drill")  # a module of one's own, named in this session only
    registry.register("ulyss_ann.errors:UlyssAnnError", "builtin")  # the package's own: imported anywhere
    install_plugin(tmp_path, monkeypatch, "reach_gadgets", "from test_registry import Gadget\n\n\n"
                   "class Level(Gadget):\n    pass\n", GROUP, ["level = reach_gadgets:Level"])
    assert [registry.reachable(name) for name in ("spanner", "drill", "builtin", "level")] == [False, False, True,
                                                                                                True]
    assert registry.get("level").name == "level" and registry.reachable("level")  # loaded: still its entry point's
    plain = gadgets()  # a registry without a home: its entry points only
    plain.register("ulyss_ann.errors:UlyssAnnError", "builtin")
    assert plain.reachable("level") and not plain.reachable("builtin")


def test_a_name_check_refuses_every_registration_an_entry_point_in_one_warning(tmp_path, monkeypatch):
    def no_auto(name):
        if name == "auto":
            raise RegistrationError("gadget name 'auto' is the registry's own")

    registry = gadgets(check_name=no_auto)
    with pytest.raises(RegistrationError, match="^gadget name 'auto' is the registry's own$"):
        registry.register("somewhere:Auto", "auto")
    install_plugin(tmp_path, monkeypatch, "auto_gadgets", "", GROUP, ["auto = auto_gadgets:Auto"])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert registry.names() == []
    assert [str(w.message) for w in said] == [f"gadget 'auto = auto_gadgets:Auto' ({GROUP}) left out: "
                                              "RegistrationError: gadget name 'auto' is the registry's own; fix or "
                                              "uninstall the package that declares it"]


def test_folded_names_are_one_whatever_their_case():
    registry = gadgets(fold_case=True)
    toy = registry.register(Gadget("Toy"))
    assert registry.get("toy") is toy and registry.get("TOY") is toy and "tOy" in registry
    with pytest.raises(RegistrationError, match="^gadget 'toy' is registered already"):
        registry.register(Gadget("toy"))
    registry.unregister("TOY")
    assert registry.names() == []


SLOW_MODULE = """\
import time

from test_registry import Gadget

time.sleep(0.5)  # a plug-in slow to import: the other thread asks meanwhile


class Slow(Gadget):
    pass
"""


@pytest.mark.parametrize("through", ["module:Class", "entry point"])
def test_two_threads_asking_at_once_get_the_one_item_loaded_once(tmp_path, monkeypatch, through):
    import threading

    module = f"slow_gadgets_{through.split()[0].replace(':', '_')}"
    calls = []
    registry = Registry("gadget", GROUP, check=lambda item, name: calls.append(name) or checked_gadget(item, name),
                        load_entry_points=through == "entry point")
    if through == "entry point":  # loaded while the group is read: the other thread must wait for the whole group
        install_plugin(tmp_path, monkeypatch, module, SLOW_MODULE, GROUP, [f"slow = {module}:Slow"])
    else:  # loaded on first lookup: once, not once per thread
        (tmp_path / f"{module}.py").write_text(SLOW_MODULE)
        monkeypatch.syspath_prepend(str(tmp_path))
        registry.register(f"{module}:Slow", "slow")
    start, got = threading.Barrier(2), []

    def ask():
        start.wait()
        try:
            got.append(registry.get("slow"))
        except UlyssAnnError as exc:
            got.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(got) == 2 and isinstance(got[0], Gadget) and got[0] is got[1], got
    assert calls.count("slow") == 1  # loaded and checked once (registering the checked item checks it again)
