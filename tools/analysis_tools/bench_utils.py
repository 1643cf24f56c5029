"""Helpers shared by the benchmark scripts in this folder."""
import contextlib
import importlib
import os
import statistics
import sys
import types
from typing import Iterator, Sequence


@contextlib.contextmanager
def working_dir(path: str) -> Iterator[None]:
    """Run the body with ``path`` as the current directory."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def import_official(official_root: str, module: str) -> types.ModuleType:
    """Import ``module`` from a checkout of the official IFA code (never copied here)."""
    sys.path.insert(0, os.path.abspath(official_root))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


def summary(values: Sequence[float], digits: int = 1, width: int = 8) -> str:
    """``median [min-max]`` of ``values``."""
    return f'{statistics.median(values):{width}.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]'
