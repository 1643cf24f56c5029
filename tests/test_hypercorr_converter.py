"""The HSNet / PATNet key maps and converters, on state dicts in the layout of the official best_model.pt."""
import os
import subprocess
import sys

import pytest
import torch

from mmseg.registry import MODELS

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.models.utils import ConversionError, convert_hypercorr, convert_hypercorr_file, hypercorr_key

from .helpers.hypercorr_recipe import hypercorr_cfg, official_state_dict
from .test_converter import RunsCode

NAMES = ('hsnet', 'patnet')


@pytest.fixture(scope='module')
def models(root):
    return {name: MODELS.build(hypercorr_cfg(root, name)) for name in NAMES}


@pytest.fixture(scope='module')
def targets(models):
    return {name: model.state_dict() for name, model in models.items()}


@pytest.mark.parametrize('data_parallel', [True, False])
@pytest.mark.parametrize('name', NAMES)
def test_every_key_mapped_and_loaded_strictly(models, targets, name, data_parallel):
    official = official_state_dict(name, data_parallel)
    converted = convert_hypercorr(official, targets[name], name)
    assert list(converted) != [] and set(converted) == set(targets[name])
    dropped = {k for k in official if hypercorr_key(k.replace('module.', '', 1)) is None}
    expected = {'backbone.fc.weight', 'backbone.fc.bias'}
    if name == 'patnet':
        expected |= {f'reference_layer{i}.bias' for i in (1, 2, 3)}
    assert {k.replace('module.', '', 1) for k in dropped} == expected
    assert len(converted) == len(official) - len(dropped)
    models[name].load_state_dict(converted)  # strictly, by torch and by the segmentor's check
    state = models[name].state_dict()
    for key, value in official.items():
        new = hypercorr_key(key.replace('module.', '', 1))
        if new is not None:
            assert torch.equal(state[new], value), key


def test_key_map_names():
    assert hypercorr_key('hpn_learner.encoder_layer4.0.conv1.weight') == 'decode_head.squeeze.0.0.conv_q.weight'
    assert hypercorr_key('hpn_learner.encoder_layer2.3.conv2.bias') == 'decode_head.squeeze.2.3.conv_s.bias'
    assert hypercorr_key('hpn_learner.encoder_layer3to2.7.weight') == 'decode_head.mix.1.7.weight'
    assert hypercorr_key('hpn_learner.decoder2.2.bias') == 'decode_head.decoder.7.bias'
    assert hypercorr_key('reference_layer3.weight') == 'decode_head.anchors.2'
    assert hypercorr_key('backbone.layer4.2.bn3.running_var') == 'backbone.layer4.2.bn3.running_var'


def test_errors_name_the_key(targets):
    def converted(name, edit):
        sd = official_state_dict(name)
        edit(sd)
        return convert_hypercorr(sd, targets[name], name)

    with pytest.raises(ConversionError, match=r"'hpn_learner\.decoder1\.2\.weight': shape \(3,\)"):
        converted('hsnet', lambda sd: sd.__setitem__('module.hpn_learner.decoder1.2.weight', torch.zeros(3)))
    with pytest.raises(ConversionError, match=r"unexpected key 'hpn_learner\.encoder_layer5\.0\.conv1\.weight'"):
        converted('hsnet', lambda sd: sd.__setitem__('module.hpn_learner.encoder_layer5.0.conv1.weight', torch.ones(1)))
    with pytest.raises(ConversionError, match=r"stay random, e\.g\. 'decode_head\.anchors\.1'"):
        converted('patnet', lambda sd: sd.pop('module.reference_layer2.weight'))
    with pytest.raises(ConversionError, match='an official HSNet checkpoint, not PATNet: convert it with '
                       'tools/model_converters/hsnet_official_to_mmseg.py'):
        convert_hypercorr(official_state_dict('hsnet'), targets['patnet'], 'patnet')
    with pytest.raises(ConversionError, match='an official PATNet checkpoint, not HSNet'):
        convert_hypercorr(official_state_dict('patnet'), targets['hsnet'], 'hsnet')
    vgg = {'module.backbone.features.0.weight': torch.zeros(1), 'module.hpn_learner.decoder1.0.weight': torch.zeros(1)}
    with pytest.raises(ConversionError, match='VGG-16 backbone'):
        convert_hypercorr(vgg, targets['hsnet'], 'hsnet')
    with pytest.raises(ConversionError, match='no hpn_learner'):
        convert_hypercorr({'backbone.conv1.weight': torch.zeros(1)}, targets['hsnet'], 'hsnet')


def run_tool(root, name, src, dst):
    return subprocess.run([sys.executable, '-W', 'ignore', f'tools/model_converters/{name}_official_to_mmseg.py',
                           str(src), str(dst)], cwd=root, capture_output=True, text=True)


def test_cli_converts_into_a_loadable_checkpoint(root, tmp_path):
    from mmengine.runner import load_checkpoint
    src, dst = tmp_path / 'best_model.pt', tmp_path / 'patnet.pth'
    torch.save(official_state_dict('patnet'), src)
    proc = run_tool(root, 'patnet', src, dst)
    assert proc.returncode == 0, proc.stderr
    assert f'{src} (PATNet, ResNet-50) -> {dst}: 419 tensors' in proc.stdout
    assert safe_torch_load(str(dst))['meta'] == dict(source='best_model.pt', model='patnet', depth=50)
    model = MODELS.build(hypercorr_cfg(root, 'patnet'))
    load_checkpoint(model, str(dst), map_location='cpu')  # strict by the model's check
    assert torch.equal(model.decode_head.anchors[0], official_state_dict('patnet')['module.reference_layer1.weight'])
    with pytest.raises(ConversionError, match=f'{src}: an official PATNet checkpoint, not HSNet'):
        convert_hypercorr_file(str(src), str(tmp_path / 'hsnet.pth'), 'hsnet')  # what the HSNet tool runs
    assert not (tmp_path / 'hsnet.pth').exists()


def test_cli_refuses_a_pickle_that_runs_code(root, tmp_path):
    src, dst = tmp_path / 'best_model.pt', tmp_path / 'out.pth'
    torch.save(dict(official_state_dict('hsnet'), payload=RunsCode(str(tmp_path / 'code_ran'))), src)
    proc = run_tool(root, 'hsnet', src, dst)
    assert proc.returncode == 1
    for phrase in (str(src), 'refused: the file holds non-tensor objects', 'unsafe', f'({os.system.__module__}.system)',
                   'an official HSNet best_model.pt holds tensors only'):
        assert phrase in proc.stderr, (phrase, proc.stderr)
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'code_ran').exists() and not dst.exists()
