import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_engine_and_adapters_import_without_django():
    # bench/ drives these alone; a Django import here would drag the framework onto the hot path.
    code = (
        "import sys, importlib, pkgutil, routing.engine, routing.providers\n"
        "for pkg in (routing.engine, routing.providers):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env={})
    assert result.returncode == 0, result.stderr
