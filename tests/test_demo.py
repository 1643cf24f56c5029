"""tools/demo.py end to end in its quick form: every stage runs and the outputs are written."""
import json

from .helpers.launch import run


def test_quick_demo(root, tmp_path):
    proc = run(root, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick', '--num-vis', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'source only' in proc.stdout and 'IFA adapted' in proc.stdout and 'official.mIoU' in proc.stdout
    summary = json.loads((tmp_path / 'demo_results.json').read_text())
    for model in ('source_only', 'adapted'):
        assert {'mIoU', 'FBIoU', 'official.mIoU', 'mIoU_ci95'} <= set(summary[model])
        assert sorted(p.name for p in (tmp_path / 'vis' / model).rglob('*.png')) == ['episode_00000.png',
                                                                                      'episode_00001.png']
    assert json.loads((tmp_path / 'deepglobe' / 'support_pool.json').read_text())
