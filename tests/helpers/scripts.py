"""Load a script of tools/ as a module, so that tests can call its functions."""
import importlib.util
import os
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_script(relpath: str) -> types.ModuleType:
    """The module of ``ROOT/relpath`` (e.g. ``tools/analysis_tools/benchmark.py``), freshly executed."""
    path = os.path.join(ROOT, relpath)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
