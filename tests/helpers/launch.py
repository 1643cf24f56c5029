"""Run the repository's tools as a user would: ``python tools/...`` and the ``tools/*.sh`` launchers."""
import glob
import json
import os
import subprocess
import sys
from typing import Dict, Optional

from ifa_mmseg.compat import safe_torch_load

TOY_CONFIG = 'tests/helpers/toy_config.py'


def run(root: str, *args: str, timeout: int = 600, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python -W ignore ARGS`` in ``root`` with this interpreter (and ``env`` added to the environment)."""
    env = dict(os.environ, PYTHONPATH=root, **(env or {}))
    return subprocess.run([sys.executable, '-W', 'ignore', *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_sh(root: str, script: str, *args: str, port: int, env: Optional[Dict[str, str]] = None,
           cwd: Optional[str] = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``bash ROOT/tools/SCRIPT ARGS`` in ``cwd`` (default ``root``) with master port ``port``; the scripts
    call ``python``, so this interpreter's directory goes first on PATH."""
    env = dict(os.environ, PORT=str(port), PYTHONWARNINGS='ignore',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'], **(env or {}))
    return subprocess.run(['bash', os.path.join(root, 'tools', script), *args], cwd=cwd or root, env=env,
                          capture_output=True, text=True, timeout=timeout)


def logged_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics tools/test.py logged to ``WORK_DIR/<timestamp>/<timestamp>.json``, without timings."""
    logs = glob.glob(os.path.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items() if k not in ('time', 'data_time')}


def max_weight_difference(a: str, b: str) -> float:
    """Largest absolute difference between the weights of two checkpoints (which must have the same keys)."""
    wa, wb = safe_torch_load(a)['state_dict'], safe_torch_load(b)['state_dict']
    assert wa.keys() == wb.keys(), set(wa) ^ set(wb)
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
