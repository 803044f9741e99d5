"""Import layering: no import cycle in the package (function-level imports counted), and
imports inside functions only where they guard an optional dependency."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trimpomdp"
#: optional third-party dependencies a function may import on use
OPTIONAL = ("torch", "transformers", "httpx", "aiohttp", "matplotlib", "pomdp_py", "math_verify",
            "vllm", "tomllib", "tomli", "sklearn.metrics", "IPython", "safetensors", "langchain_openai",
            "litellm", "lm_eval")
#: internal modules that exist to wrap an optional dependency (importing them is guarding it)
OPTIONAL_INTERNAL = ("trimpomdp.generation.hf_local", "trimpomdp.generation.prm_hf",
                     "trimpomdp.generation._http", "trimpomdp.generation.openai_compat",
                     "trimpomdp.generation.prm_vllm", "trimpomdp.generation.prm_self",
                     "trimpomdp.serve", "trimpomdp.evaluation.plots",
                     "trimpomdp.pomdp.pomdp_py_bridge", "trimpomdp.solvers._native",
                     "trimpomdp.generation.vllm_prm_plugin", "trimpomdp.generation.engine_vllm")


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(target module, in_function) for every internal import outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            cands = [base + "." + a.name for a in node.names] + [base]
        else:
            cands = [a.name for a in node.names]
        q, in_fn, in_tc = node, False, False
        while q in parents:
            q = parents[q]
            if isinstance(q, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_fn = True
            if isinstance(q, ast.If) and "TYPE_CHECKING" in ast.unparse(q.test):
                in_tc = True
        if in_tc:
            continue
        target = next((c for c in cands if c in mods), None)
        yield target, (cands[-1] if target is None else target), in_fn


def _graph():
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    fn_internal, fn_external, top = [], [], 0
    for name, path in mods.items():
        for target, raw, in_fn in _imports(name, path, mods):
            if target is not None:
                if target != name:
                    edges[name].add(target)
                if in_fn:
                    fn_internal.append((name, target))
                else:
                    top += 1
            elif in_fn:
                fn_external.append((name, raw))
    return mods, edges, fn_internal, fn_external, top


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5_000))
    try:
        for v in edges:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(old)  # other tests depend on the default limit
    return out


def test_no_import_cycles():
    _, edges, *_ = _graph()
    cycles = _cycles(edges)
    assert cycles == [], f"import cycles: {cycles}"


def test_function_level_imports_guard_optional_dependencies():
    _, _, fn_internal, fn_external, top = _graph()
    bad_int = [(a, b) for a, b in fn_internal if not b.startswith(OPTIONAL_INTERNAL)]
    bad_ext = [(a, b) for a, b in fn_external
               if b.split(".")[0] not in {o.split(".")[0] for o in OPTIONAL} and b not in OPTIONAL]
    print(f"internal imports: {top} at module level, {len(fn_internal)} in functions")
    assert not bad_int, f"function-level internal imports: {sorted(set(bad_int))}"
    assert not bad_ext, f"function-level imports of core dependencies: {sorted(set(bad_ext))}"


def test_light_entry_points_do_not_import_heavy_packages():
    """`trimpomdp --version` and `act` never load scikit-learn, scipy.stats, torch or matplotlib."""
    code = ("import sys; from trimpomdp.cli.main import main; import trimpomdp.cli.act; "
            "heavy = [m for m in ('sklearn', 'torch', 'matplotlib', 'scipy.stats') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", out


@pytest.mark.parametrize("pkg", ["trimpomdp", "trimpomdp.routing", "trimpomdp.sim",
                                 "trimpomdp.observation", "trimpomdp.data", "trimpomdp.policies",
                                 "trimpomdp.solvers"])
def test_lazy_package_names_resolve(pkg):
    import importlib

    mod = importlib.import_module(pkg)
    for name in getattr(mod, "__all__", []):
        assert getattr(mod, name) is not None
