import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = ("billing", "config", "core", "portal", "routing")


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Each module of the folder -> the modules it imports (absolute names), read from the source."""
    found = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_engine_and_adapters_import_without_django():
    # bench/ drives these alone; a Django import here would drag the framework onto the hot path.
    code = (
        "import sys, importlib, pkgutil, core, routing.engine, routing.providers\n"
        "for pkg in (core, routing.engine, routing.providers):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env={})
    assert result.returncode == 0, result.stderr


def test_the_shared_values_and_errors_import_nothing_of_ours():
    for module, names in imported_modules("core").items():
        ours = {n for n in names if n.split(".")[0] in OURS and n.split(".")[0] != "core"}
        assert not ours, (module, ours)


def test_adapters_take_nothing_from_the_engine_or_the_proxy():
    for module, names in imported_modules("routing/providers").items():
        wrong = {n for n in names if n.startswith(("routing.engine", "routing.proxy"))}
        assert not wrong, (module, wrong)


def test_billing_takes_nothing_from_the_engine_or_the_proxy():
    for module, names in imported_modules("billing").items():
        wrong = {n for n in names if n.startswith(("routing.engine", "routing.proxy"))}
        assert not wrong, (module, wrong)
