"""Opt-in (IFA_SLURM_TEST=1): tools/slurm_train.sh and tools/slurm_test.sh on a real one-node Slurm cluster."""
import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(os.environ.get('IFA_SLURM_TEST') != '1',
                    reason='starts Slurm daemons as root and may apt-get install slurm-wlm munge; '
                           'set IFA_SLURM_TEST=1')
def test_slurm_train_scancel_resume_and_test(root):
    """See tests/integration/slurm_cluster.sh."""
    proc = subprocess.Popen(['bash', 'tests/integration/slurm_cluster.sh'], cwd=root,
                            env=dict(os.environ, PYTHON=sys.executable), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM, not the SIGKILL of subprocess.run: the script's trap stops its daemons
        out, _ = proc.communicate()
    assert proc.returncode == 0, out[-8000:]
