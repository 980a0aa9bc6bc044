"""The package's shape: layers that import one way, no cycle, no private name across modules.

Layers, from the top: ``cli → paper → fitting → gdl / training → spectra → model``.
A module may import its own subpackage and the layers below it; ``gdl`` and
``training`` are siblings and import neither each other. ``errors``, ``version``,
``figures`` (what every figure shares) and ``registry`` (what engines, readers and recipes are
registered in) sit under everything; the package root (``ulyss_ann/__init__``) sits above everything
and no module imports it. Every import statement counts, those inside functions too.

Inside ``fitting``: the top modules (the shared core: ``core``, ``result``, ``engines`` …) import
none of its subpackages; each subpackage (``native_engine``, ``gdl_engine``, ``batch``, ``lsf``,
``chimap``) imports its own modules and the top, never another subpackage (they are independent
uses of the core: no cycle among them, each separable); the engine packages are imported by no
module outside them (the registry names them by ``"module:Class"`` strings).

One address per name: every name in a module's ``__all__`` is defined there, and an import names a
module that defines what it imports; only the package root (the public facade) and the console
script's ``ulyss_ann.cli:main`` re-export.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ulyss_ann"

LAYERS = {"model": 0, "spectra": 1, "gdl": 2, "training": 2, "fitting": 3, "paper": 4, "cli": 5}
BASE = {"ulyss_ann.errors", "ulyss_ann.registry", "ulyss_ann.version", "ulyss_ann.figures"}
SIBLINGS = {"gdl", "training"}
MAX_LINES = 400
FITTING = "ulyss_ann.fitting"
#: Fitting's subpackages that are engines: only the registry's strings name them.
ENGINE_PACKAGES = {"native_engine", "gdl_engine"}
#: Modules that may re-export (name -> the names they may; None: any): the public facade, and the
#: console script's address that installed ``ulyss-ann`` scripts import (setup.cfg).
FACADES = {"ulyss_ann": None, "ulyss_ann.cli": {"main"}}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name, path):
    """(target module, imported names) of every import statement in one module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((target, [alias.name for alias in node.names]))
    return found


def resolve(target, names, known):
    """Modules an import statement reaches inside the package (a name may be a submodule)."""
    if target != "ulyss_ann" and not target.startswith("ulyss_ann."):
        return []
    reached = [target] if target in known else []
    reached += [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
    return reached or [target]


def layer(module):
    if module in BASE:
        return -1
    if module == "ulyss_ann":
        return 99
    return LAYERS.get(module.split(".")[1], None)


def graph():
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = set()
        for target, names in imports(name, path):
            targets.update(m for m in resolve(target, names, known) if m != name)
        edges[name] = targets
    return known, edges


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_every_module_belongs_to_a_layer():
    known = modules()
    stray = [m for m in known if layer(m) is None]
    assert not stray, f"modules outside the layers {sorted(LAYERS)}: {stray}"


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_every_package_import_names_a_module_that_exists():
    """An import of a module the reorganisation moved would only fail when its line runs."""
    known = modules()
    missing = []
    for name, path in known.items():
        for target, names in imports(name, path):
            if target.startswith("ulyss_ann") and target not in known:
                missing.append(f"{name} imports {target}")
    assert not missing, "\n".join(missing)


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_imports_point_down_the_layers():
    _, edges = graph()
    wrong = []
    for source, targets in edges.items():
        for target in targets:
            if target == "ulyss_ann" and source != "ulyss_ann":
                wrong.append(f"{source} imports the package root")
                continue
            a, b = layer(source), layer(target)
            if b is None or a is None:
                continue
            sub_a, sub_b = source.split(".")[1:2], target.split(".")[1:2]
            if b > a:
                wrong.append(f"{source} (layer {a}) imports {target} (layer {b})")
            elif a == b and sub_a != sub_b and set(sub_a + sub_b) <= SIBLINGS:
                wrong.append(f"{source} imports its sibling layer's {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def fitting_room(module):
    """Where a module sits in ``fitting``: None outside it, "" for the top modules, else its subpackage."""
    if module != FITTING and not module.startswith(FITTING + "."):
        return None
    parts = module.split(".")[2:]
    known = modules()
    return parts[0] if parts and f"{FITTING}.{parts[0]}" in known and is_package(f"{FITTING}.{parts[0]}") else ""


def is_package(module):
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_fitting_subpackages_import_the_top_and_themselves_only():
    _, edges = graph()
    wrong = []
    for source, targets in edges.items():
        here = fitting_room(source)
        for target in targets:
            there = fitting_room(target)
            if there in (None, "") or there == here:
                continue
            if here == "":
                wrong.append(f"{source} (fitting's top) imports the subpackage module {target}")
            elif here is not None:
                wrong.append(f"{source} ({here}) imports another subpackage's {target}")
            elif there in ENGINE_PACKAGES:
                wrong.append(f"{source} imports the engine module {target}: name the engine through the registry")
    assert not wrong, "imports across fitting's rooms:\n" + "\n".join(sorted(wrong))


def defined_names(path):
    """Names a module defines at its top level (in any branch), and those its ``__getattr__`` computes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":  # `if name == "X":` computed on use (PEP 562)
                names.update(c.value for n in ast.walk(node) if isinstance(n, ast.Compare)
                             for c in n.comparators if isinstance(c, ast.Constant) and isinstance(c.value, str))
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            stack += node.body + node.orelse if hasattr(node, "orelse") else node.body
            stack += getattr(node, "finalbody", []) + [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def declared_all(path):
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [e.value for e in node.value.elts]
    return None


def foreign(module, names, known):
    """The names a module neither defines nor has as a submodule (a facade's allowed ones left out)."""
    allowed = FACADES.get(module, set())
    if allowed is None:
        return []
    defined = defined_names(known[module])
    return [n for n in names if n not in defined and f"{module}.{n}" not in known and n not in allowed and n != "*"]


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_one_address_per_name():
    """No module re-exports a name defined elsewhere, and every import takes a name from where it is defined."""
    known = modules()
    wrong = []
    for name, path in known.items():
        wrong += [f"{name}.__all__ lists {n}, defined elsewhere" for n in foreign(name, declared_all(path) or [], known)]
        for target, names in imports(name, path):
            if target in known:
                wrong += [f"{name} imports {n} from {target}, which does not define it"
                          for n in foreign(target, names, known)]
    assert not wrong, "names with two addresses:\n" + "\n".join(sorted(wrong))


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_packages_say_what_they_hold():
    """Every subpackage (``fitting``'s too): a docstring, and an ``__all__`` of its own modules' names (no
    re-export); the package root and the console script's ``ulyss_ann.cli`` are the facades."""
    known = modules()
    missing = []
    for name in [m for m in known if m not in FACADES and is_package(m)]:
        tree = ast.parse(known[name].read_text())
        listed = declared_all(known[name])
        if not ast.get_docstring(tree) or listed is None:
            missing.append(f"{name}: docstring and __all__")
        elif set(listed) != {m.rpartition(".")[2] for m in known if m.rpartition(".")[0] == name}:
            missing.append(f"{name}.__all__ {sorted(listed)} is not the list of its modules")
    assert not missing, "\n".join(missing)


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_no_import_cycle():
    _, edges = graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_no_private_name_crosses_a_module_boundary():
    known = modules()
    crossing = []
    for name, path in known.items():
        for target, names in imports(name, path):
            if target.startswith("ulyss_ann") and target != name:
                crossing += [f"{name} imports {target}.{n}" for n in names
                             if n.startswith("_") and not n.startswith("__")]
    assert not crossing, "\n".join(crossing)


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_modules_hold_one_idea_each():
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert not {n: c for n, c in long.items() if c > MAX_LINES}, f"modules over {MAX_LINES} lines"


@pytest.mark.first_leg  # reads the checkout's source text, the same in both legs
def test_the_layering_test_sees_a_wrong_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a model module importing the fitting layer is caught."""
    fake = tmp_path / "ulyss_ann"
    for name, path in modules().items():
        target = fake / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (fake / "model" / "wavelength.py").write_text("from ulyss_ann.fitting.batch.driver import fit\n")
    # fitting's rooms: the top reaching into the batch, the batch into an engine, the CLI into an engine
    with open(fake / "fitting" / "quality.py", "a") as top:
        top.write("from ulyss_ann.fitting.batch.journal import failure_row\n")
    with open(fake / "fitting" / "batch" / "tasks.py", "a") as tasks:
        tasks.write("from ulyss_ann.fitting.native_engine.block import SpectralBlock\n")
    with open(fake / "cli" / "lsf.py", "a") as cli:
        cli.write("import ulyss_ann.fitting.gdl_engine.uly_lsf\n")
    # a second address: a name re-exported through __all__, and imported from there
    with open(fake / "fitting" / "masks.py", "a") as masks:
        masks.write("from ulyss_ann.model.wavelength import C_KMS\n")
    (fake / "fitting" / "der_snr.py").write_text("from ulyss_ann.fitting.masks import C_KMS\n" +
                                                  (fake / "fitting" / "der_snr.py").read_text())
    (fake / "fitting" / "der_snr.py").write_text((fake / "fitting" / "der_snr.py").read_text().replace(
        "__all__ = [", "__all__ = ['C_KMS', ", 1))
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="ulyss_ann.model.wavelength \\(layer 0\\) imports"):
        test_imports_point_down_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycle()
    with pytest.raises(AssertionError) as rooms:
        test_fitting_subpackages_import_the_top_and_themselves_only()
    for line in ["ulyss_ann.fitting.quality (fitting's top) imports the subpackage module ulyss_ann.fitting.batch.journal",
                 "ulyss_ann.fitting.batch.tasks (batch) imports another subpackage's "
                 "ulyss_ann.fitting.native_engine.block",
                 "ulyss_ann.cli.lsf imports the engine module ulyss_ann.fitting.gdl_engine.uly_lsf"]:
        assert line in str(rooms.value)
    with pytest.raises(AssertionError) as addresses:
        test_one_address_per_name()
    for line in ["ulyss_ann.fitting.der_snr.__all__ lists C_KMS, defined elsewhere",
                 "ulyss_ann.fitting.der_snr imports C_KMS from ulyss_ann.fitting.masks, which does not define it"]:
        assert line in str(addresses.value)


def test_import_ulyss_ann_stays_light():
    heavy = ["dask", "distributed", "keras", "torch", "matplotlib", "jinja2", "GDL", "specutils", "tqdm"]
    code = ("import sys, ulyss_ann; ulyss_ann.Interpolator; ulyss_ann.Spectrum; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import ulyss_ann loaded {result.stdout.strip()}"


def test_the_batch_driver_loads_no_engine_until_one_is_used():
    """The driver of a batch (and a GDL-engine run) does not load the native engine's numba kernels or torch:
    they cost their import in every process that does not fit natively."""
    code = ("import sys, ulyss_ann.fitting.batch.driver, ulyss_ann.fitting.batch.tasks; "
            "print(','.join(m for m in sys.modules if m in ('numba', 'torch') "
            "or m.startswith(('ulyss_ann.fitting.native_engine', 'ulyss_ann.fitting.gdl_engine'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the batch driver loaded {result.stdout.strip()}"
