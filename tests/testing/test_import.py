"""What hwnas ships for testing imports without pytest, as optuna.testing does."""

import pkgutil
import subprocess
import sys

import hwnas.testing

SUITES = ["hwnas.testing"] + [f"hwnas.testing.{m.name}" for m in pkgutil.iter_modules(hwnas.testing.__path__)]

BLOCK_PYTEST = """
import sys

class NoPytest:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, NoPytest())
for module in SUITES:
    __import__(module)
try:
    import pytest
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("pytest was importable")
print("imported", len(SUITES), "modules")
"""


def test_suites_import_without_pytest():
    assert {"hwnas.testing.spaces", "hwnas.testing.search", "hwnas.testing.evaluators"} <= set(SUITES)
    code = f"SUITES = {SUITES!r}\n{BLOCK_PYTEST}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"imported {len(SUITES)} modules"
