"""tools/demo.py end to end in its quick form: every stage runs and the outputs are written."""
import json

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.models import EPISODE_RECIPES

from .helpers.launch import run

MODELS = ('source_only', 'control', 'adapted', 'episode_control', 'episode')
BN_TENSORS = ('running_mean', 'running_var')


def test_quick_demo(root, tmp_path):
    proc = run(root, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick', '--num-vis', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    for title in ('source only', 'control (lr 0)', 'IFA adapted', 'per-episode control (no step)', 'per-episode adapted',
                  'pool: gain over control', 'per-episode: gain over control', 'official.mIoU'):
        assert title in proc.stdout, title
    summary = json.loads((tmp_path / 'demo_results.json').read_text())
    for model in MODELS:
        assert {'mIoU', 'FBIoU', 'official.mIoU', 'mIoU_ci95'} <= set(summary[model])
        assert sorted(p.name for p in (tmp_path / 'vis' / model).rglob('*.png')) == ['episode_00000.png',
                                                                                      'episode_00001.png']
    # lr 0 with BatchNorm frozen changes nothing: the control is the source model to the last digit
    # (BatchNorm statistics re-estimated on the target during adaptation would move it)
    assert summary['control'] == summary['source_only']
    assert summary['control_equals_source_only'] is True
    for key in ('mIoU', 'FBIoU', 'official.mIoU'):
        assert summary['gain_over_control'][key] == summary['adapted'][key] - summary['control'][key]
    # per-episode adaptation: its control (no step) is the source model through the per-episode route (float
    # rounding apart), and the episodes' adaptation moved the result; the default recipe, the quick run's one step
    assert summary['episode_adaptation']['steps'] == 1
    assert summary['episode_adaptation'] == dict(EPISODE_RECIPES['light'], steps=1)
    assert all(abs(d) < 0.5 for d in summary['episode_control_minus_source_only'].values())
    assert summary['episode']['mIoU'] != summary['episode_control']['mIoU']
    for key in ('mIoU', 'FBIoU', 'official.mIoU'):
        assert summary['episode_gain_over_control'][key] == summary['episode'][key] - summary['episode_control'][key]
    for model in ('control', 'adapted'):
        assert json.loads((tmp_path / model / 'support_pool.json').read_text())
    assert (tmp_path / 'control' / 'support_pool.json').read_text() == \
        (tmp_path / 'adapted' / 'support_pool.json').read_text()

    # the adaptation keeps the source model's BatchNorm (statistics and affine) and changes the convolutions
    source = safe_torch_load(str(tmp_path / 'source' / 'epoch_1.pth'))['state_dict']
    control = safe_torch_load(str(tmp_path / 'control' / 'epoch_2.pth'))['state_dict']
    adapted = safe_torch_load(str(tmp_path / 'adapted' / 'epoch_2.pth'))['state_dict']
    assert source.keys() == control.keys() == adapted.keys()
    assert all(source[k].equal(control[k]) for k in source)
    bn = [k for k in source if k.rsplit('.', 1)[-1] in BN_TENSORS]
    bn_affine = [k.rsplit('.', 1)[0] + p for k in bn if k.endswith('running_mean') for p in ('.weight', '.bias')]
    assert bn and all(source[k].equal(adapted[k]) for k in bn + bn_affine)
    assert any(not source[k].equal(adapted[k]) for k in source if k.endswith('conv1.weight'))

    # every stage logs into its own work dir: no two share a scalars.json
    for stage in ('source', 'control', 'adapted'):
        assert len(list((tmp_path / stage).glob('*/vis_data/scalars.json'))) == 1, stage
