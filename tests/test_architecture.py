"""The package's shape, checked from its source: no import cycles (lazy imports
inside functions count; ``if TYPE_CHECKING:`` blocks do not run and do not),
the engine imports only NumPy and itself, and no module reaches into another's
private names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nnscratch

ROOT = Path(nnscratch.__file__).parent
ENGINE = {
    *("functional", "activations", "layers", "losses", "initializers", "optimizers", "schedules", "parameters"),
    *("network", "training", "inference", "callbacks", "data", "io", "summary", "_validation", "_cache", "_registry"),
    "threads",
    "kernels",
}
# Names that begin with "_" but are public API of what they belong to.
PUBLIC_UNDERSCORE = {"_replace", "_make", "_fields", "_asdict"}  # namedtuple's API
# scikit-learn keeps a fitted MLPClassifier's label encoder in a private attribute;
# export.to_sklearn must set it to hand back a fitted estimator (documented there).
FOREIGN_PRIVATE = {("export", "_label_binarizer")}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__") or "__init__"
        found[name] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST):
    """Every node except those inside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        yield node
        yield from _walk(node)


def _package(module: str) -> list[str]:
    is_package = (ROOT / Path(*module.split(".")) / "__init__.py").is_file() if module != "__init__" else True
    parts = [] if module == "__init__" else module.split(".")
    return parts if is_package else parts[:-1]


def _imports(module: str) -> set[str]:
    """The nnscratch modules ``module`` imports, anywhere in its code."""
    out = set()
    for node in _walk(MODULES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nnscratch."):
                    out.add(alias.name[len("nnscratch.") :])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("nnscratch"):
                    base = node.module.split(".")[1:]
                else:
                    continue
            else:
                package = _package(module)
                base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            for alias in node.names:
                sub = ".".join([*base, alias.name])
                out.add(sub if sub in MODULES else (".".join(base) or "__init__"))
    return {m for m in out if m != module}


def _cycles() -> list[list[str]]:
    graph = {m: _imports(m) for m in MODULES}
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_there_are_no_import_cycles():
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle():
    # A test that cannot fail proves nothing: plant a cycle and see it found.
    MODULES["_planted"] = ast.parse("from . import network")
    original = MODULES["network"]
    MODULES["network"] = ast.parse(ast.unparse(original) + "\nfrom . import _planted\n")
    try:
        assert any("_planted" in cycle for cycle in _cycles())
    finally:
        MODULES["network"] = original
        del MODULES["_planted"]


@pytest.mark.parametrize("module", sorted(ENGINE))
def test_the_engine_imports_only_numpy_and_itself(module):
    outside = set()
    for node in _walk(MODULES[module]):
        if isinstance(node, ast.Import):
            outside |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            outside.add(node.module.split(".")[0])
    allowed = {"numpy", "__future__", "typing", "collections", "dataclasses", "math", "copy", "os", "json", "functools",
               "struct", "tempfile", "glob", "pathlib", "hashlib", "sys", "time", "warnings", "contextlib"}  # fmt: skip
    if module == "io":
        allowed.add("safetensors")  # the model file format
    if module == "callbacks":
        allowed.add("tqdm")  # the progress bar
    if module == "kernels":
        allowed.add("numba")  # the optional accelerator, imported only when installed
    if module == "threads":
        allowed |= {"threadpoolctl", "contextlib", "functools"}  # limits BLAS threads (a core dependency)
    assert outside <= allowed, f"{module} imports {sorted(outside - allowed)}"
    assert _imports(module) <= ENGINE, f"{module} imports {sorted(_imports(module) - ENGINE)} from outside the engine"


# The accelerator sits beside the maths, not inside it: one fused branch in Dense's
# forward and backward, one in Optimizer.step (and training may tune around it).
KERNEL_CALLERS = {("layers", "Dense.forward"), ("optimizers", "Optimizer.step")}


def _kernel_calls(module: str) -> set[tuple[str, str]]:
    """``(module, Class.method)`` for every call of a ``kernels.`` function in ``module``."""
    found = set()

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, f"{where}.{child.name}" if where else child.name)
                continue
            func = child.func if isinstance(child, ast.Call) else None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "kernels":
                found.add((module, where))
            visit(child, where)

    visit(MODULES[module], "")
    return found


def test_only_dense_and_the_optimizer_step_call_the_kernels():
    importers = {m for m in MODULES if "kernels" in _imports(m)}
    # ``logs watch`` turns the accelerator off for its process (a daemon that predicts keeps no compiler
    # in memory); the switch is all it may touch.
    switches = {"weblogs.cli.commands"}
    assert importers <= {"layers", "optimizers", "training"} | switches, f"{sorted(importers)} import kernels"
    for module in importers & switches:
        used = {node.attr for node in _walk(MODULES[module]) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id == "kernels"}  # fmt: skip
        assert used == {"use_kernels"}, f"{module} uses kernels.{sorted(used)}"
    calls = set().union(*(_kernel_calls(m) for m in ENGINE if m != "kernels"))
    assert calls <= KERNEL_CALLERS, f"kernels called from {sorted(calls - KERNEL_CALLERS)}"
    assert calls == KERNEL_CALLERS  # each fast path is still there


def test_the_kernel_call_finder_finds_one():
    original = MODULES["activations"]
    MODULES["activations"] = ast.parse("class ReLU:\n    def backward(self, g):\n        return kernels.ready(g)\n")
    try:
        assert _kernel_calls("activations") == {("activations", "ReLU.backward")}
    finally:
        MODULES["activations"] = original


def _private_uses(module: str) -> list[str]:
    found = []
    for node in _walk(MODULES[module]):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
        dunder = node.attr.startswith("__") and node.attr.endswith("__") if isinstance(node, ast.Attribute) else False
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not dunder
            and node.attr not in PUBLIC_UNDERSCORE
        ):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            if (module, node.attr) in FOREIGN_PRIVATE:
                continue
            found.append(f"{ast.unparse(owner)}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    uses = {m: _private_uses(m) for m in sorted(MODULES)}
    assert {m: u for m, u in uses.items() if u} == {}


def test_the_private_name_finder_finds_one():
    assert _private_uses_of("x = net._flat\nfrom .layers import _helper\n") == ["import _helper", "net._flat"]


def _private_uses_of(source: str) -> list[str]:
    MODULES["_probe"] = ast.parse(source)
    try:
        return sorted(_private_uses("_probe"))
    finally:
        del MODULES["_probe"]


# --- the web-log wing: each concept defined once ----------------------------------------------------------------

WING = {name: tree for name, tree in MODULES.items() if name.startswith("weblogs.")}


def _defined(name: str) -> list[str]:
    """The modules of the package that define a function (or class) called ``name``."""
    return sorted(m for m, tree in MODULES.items() for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name)  # fmt: skip


def _calls(tree: ast.AST, attribute: str) -> int:
    return sum(isinstance(n, ast.Attribute) and n.attr == attribute for n in ast.walk(tree))


@pytest.mark.parametrize(
    ("concept", "home"),
    [("client_of", "weblogs.lines.record"), ("decode_twice", "weblogs.evidence.vocabulary"),
     ("bucket", "weblogs.evidence.vocabulary"), ("write_atomically", "io"), ("ClientBook", "weblogs.features.counts"),
     ("JudgementPoints", "weblogs.features.points"), ("Decider", "weblogs.serve.decision"),
     ("TimeOrder", "weblogs.lines.order")],
)  # fmt: skip
def test_each_web_log_concept_is_defined_once(concept, home):
    assert _defined(concept) == [home]


def test_the_ban_rule_is_written_once():
    """P(bad) is compared with the client model's threshold in one place, ``ClientModel.bans``
    (``ClientTally``, the classic count rule, has a threshold of its own)."""

    def comparisons(tree: ast.AST) -> list[str]:
        return [
            ast.unparse(n)
            for n in ast.walk(tree)
            if isinstance(n, ast.Compare)
            and any(isinstance(x, ast.Attribute) and x.attr == "threshold" for x in [n.left, *n.comparators])
        ]

    found = {m: comparisons(tree) for m, tree in WING.items() if comparisons(tree)}
    assert found == {
        "weblogs.model.clients": ["probability >= self.threshold"],
        "weblogs.serve.classify": ["s['peak'] >= self.threshold", "s['peak'] < self.threshold"],
    }, found


def test_one_scoring_path_and_one_client_key_in_the_web_log_wing():
    """The networks are run in one place each (the line model in ``WebLogModel.predict_rows``,
    the client model in ``ClientModel.probability``); nobody else works out who a client is
    or decodes a target twice, or writes a file by hand-made rename."""
    runs = {m: _calls(tree, "predict") for m, tree in WING.items() if _calls(tree, "predict")}
    assert runs == {"weblogs.model.weblog": 1, "weblogs.model.clients": 1}, runs
    for module, tree in WING.items():
        source = ast.unparse(tree)
        if module != "weblogs.lines.record":
            assert "session != '-'" not in source and 'session != "-"' not in source, module
        if module != "weblogs.evidence.vocabulary":
            assert "unquote(unquote(" not in source, module
        assert _calls(tree, "replace") == 0 or "os.replace" not in source, module
        assert "mkstemp" not in source, module


LAYOUT = ("lines", "evidence", "features", "labels", "model", "serve", "watch", "cli")  # the order a line travels


def _upward(imports: dict[str, set[str]]) -> list[str]:
    """Imports from a folder of the wing to a later one of ``LAYOUT``."""

    def rank(module: str) -> int | None:
        parts = module.split(".")
        return LAYOUT.index(parts[1]) if len(parts) > 1 and parts[0] == "weblogs" and parts[1] in LAYOUT else None

    return sorted(f"{m} -> {t}" for m, targets in imports.items() for t in targets
                  if rank(m) is not None and rank(t) is not None and rank(t) > rank(m))  # fmt: skip


def test_the_web_log_wing_is_laid_out_in_the_order_a_line_travels():
    """Every module of the wing lives in one of the folders of ``LAYOUT`` and imports only
    from its own folder and the ones before it (type-only imports aside)."""
    assert sorted({m.split(".")[1] for m in WING if m.count(".") >= 2}) == sorted(LAYOUT)
    assert [m for m in WING if m.count(".") == 1 and m.split(".")[1] not in LAYOUT] == []
    assert _upward({m: _imports(m) for m in WING}) == []


def test_the_upward_finder_finds_one():
    imports = {"weblogs.lines.record": {"weblogs.model.weblog"}, "weblogs.cli.commands": {"weblogs.lines.order"}}
    assert _upward(imports) == ["weblogs.lines.record -> weblogs.model.weblog"]


def _oversized(trees: dict[str, ast.Module], most_parameters: int = 8, most_lines: int = 60) -> list[str]:
    out = []
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            n = len(names) - (names[:1] in (["self"], ["cls"]))
            public = not node.name.startswith("_") or node.name == "__init__"
            if public and (n > most_parameters or a.vararg or a.kwarg):
                hidden = " and *args/**kwargs" if a.vararg or a.kwarg else ""
                out.append(f"{module}.{node.name}: {n} parameters{hidden}")
            if node.end_lineno - node.lineno + 1 > most_lines:
                out.append(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    return out


def test_the_web_log_wing_has_no_wide_signature_and_no_long_function():
    """No public function or constructor of the wing takes more than 8 parameters (settings
    travel as objects: TrainSettings, ClassifySettings, BanPolicy, WatchSettings), none hides
    them in *args/**kwargs, and no function is longer than 60 lines."""
    assert _oversized(WING) == []


def test_the_size_checker_finds_a_wide_and_a_long_function():
    wide = "def f(a, b, c, d, e, f, g, h, i):\n    pass\n"
    long = "def g(self):\n" + "    x = 1\n" * 60
    assert _oversized({"m": ast.parse(wide + long)}) == ["m.f: 9 parameters", "m.g: 61 lines"]


def test_one_per_client_tally_in_the_web_log_wing():
    """Client evidence lives in one place, ``ClientBook`` (``features.counts``): the context
    tokens read its windows, the client model its counts. The classic count rule
    (``ClientTally``, ``--ban-rule count``) keeps its own: it counts something else."""

    def targets(node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.Assign):
            return node.targets
        return [node.target] if isinstance(node, ast.AnnAssign) else []

    keepers = sorted({
        m for m, tree in WING.items() for node in ast.walk(tree) for t in targets(node)
        if isinstance(t, ast.Attribute) and t.attr in ("clients", "state") and isinstance(t.value, ast.Name)
        and t.value.id == "self"
    })  # fmt: skip
    assert keepers == ["weblogs.features.counts", "weblogs.serve.classify"], keepers


# What a newcomer reads, in order, to learn backpropagation from the engine.
NEWCOMER_PATH = ("functional", "activations", "layers", "losses", "network", "training", "optimizers")


def test_the_newcomers_path_reads_a_screen_at_a_time():
    """No function on the newcomer's path is longer than 60 lines (``fit`` included,
    docstring and all), the epoch loop takes at most 5 parameters, and ``network``
    stays within 330 lines."""
    long = [f for f in _oversized({m: MODULES[m] for m in NEWCOMER_PATH}) if f.endswith(" lines")]
    assert long == []
    epoch = next(n for n in ast.walk(MODULES["training"]) if isinstance(n, ast.FunctionDef) and n.name == "_run_epoch")
    assert len(epoch.args.args) <= 5
    assert len((ROOT / "network.py").read_text().splitlines()) <= 330
