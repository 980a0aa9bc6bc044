"""The package's shape: layers that import one way, no cycle, no private name across modules.

Layers, from the top: ``cli → paper → fitting → gdl / training → spectra → model``.
A module may import its own subpackage and the layers below it; ``gdl`` and
``training`` are siblings and import neither each other. ``errors``, ``version`` and
``figures`` (what every figure shares) sit under everything; the package root (``ulyss_ann/__init__``) sits above everything
and no module imports it. Every import statement counts, those inside functions too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ulyss_ann"

LAYERS = {"model": 0, "spectra": 1, "gdl": 2, "training": 2, "fitting": 3, "paper": 4, "cli": 5}
BASE = {"ulyss_ann.errors", "ulyss_ann.version", "ulyss_ann.figures"}
SIBLINGS = {"gdl", "training"}
MAX_LINES = 400


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


def test_every_module_belongs_to_a_layer():
    known = modules()
    stray = [m for m in known if layer(m) is None]
    assert not stray, f"modules outside the layers {sorted(LAYERS)}: {stray}"


def test_every_package_import_names_a_module_that_exists():
    """An import of a module the reorganisation moved would only fail when its line runs."""
    known = modules()
    missing = []
    for name, path in known.items():
        for target, names in imports(name, path):
            if target.startswith("ulyss_ann") and target not in known:
                missing.append(f"{name} imports {target}")
    assert not missing, "\n".join(missing)


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


def test_no_private_name_crosses_a_module_boundary():
    known = modules()
    crossing = []
    for name, path in known.items():
        for target, names in imports(name, path):
            if target.startswith("ulyss_ann") and target != name:
                crossing += [f"{name} imports {target}.{n}" for n in names
                             if n.startswith("_") and not n.startswith("__")]
    assert not crossing, "\n".join(crossing)


def test_modules_hold_one_idea_each():
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert not {n: c for n, c in long.items() if c > MAX_LINES}, f"modules over {MAX_LINES} lines"


def test_the_layering_test_sees_a_wrong_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a model module importing the fitting layer is caught."""
    fake = tmp_path / "ulyss_ann"
    for name, path in modules().items():
        target = fake / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (fake / "model" / "wavelength.py").write_text("from ulyss_ann.fitting.batch import fit\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="ulyss_ann.model.wavelength \\(layer 0\\) imports"):
        test_imports_point_down_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycle()


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
    code = ("import sys, ulyss_ann.fitting.batch, ulyss_ann.fitting.tasks; "
            "print(','.join(m for m in ('numba', 'torch', 'ulyss_ann.fitting.spectral_block') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the batch driver loaded {result.stdout.strip()}"
