import os
import subprocess
import sys

import pytest
import torch

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.models import ConversionError, IFAResNet, convert_official

from .helpers.official_recipe import imagenet_state_dict, official_trained_state_dict


@pytest.fixture(scope='module')
def target():
    return IFAResNet(depth=50).state_dict()


def test_both_formats_fill_every_weight(target):
    a = convert_official(imagenet_state_dict(50), target)
    b = convert_official(official_trained_state_dict(50), target)
    assert list(a) == list(b) and set(a) == set(target)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(a['stem.7.running_var'], imagenet_state_dict(50)['bn1.running_var'])
    assert torch.equal(a['stem.6.weight'], imagenet_state_dict(50)['conv1.6.weight'])


def test_dataparallel_prefix(target):
    sd = {f'module.{k}': v for k, v in official_trained_state_dict(50).items()}
    assert set(convert_official(sd, target)) == set(target)


def test_errors_name_the_key(target):
    sd = official_trained_state_dict(50)
    sd['layer2.0.conv1.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"layer2\.0\.conv1\.weight.*shape"):
        convert_official(sd, target)
    sd = official_trained_state_dict(50)
    sd['layer3.0.se.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"unexpected key 'layer3\.0\.se\.weight'"):
        convert_official(sd, target)
    sd = official_trained_state_dict(50)
    del sd['layer0.0.3.weight']
    with pytest.raises(ConversionError, match=r"stay random, e\.g\. 'stem\.3\.weight'"):
        convert_official(sd, target)
    with pytest.raises(ConversionError, match='wrong depth'):
        convert_official(imagenet_state_dict(101), target)


def run_tool(root, src, dst):
    return subprocess.run([sys.executable, '-W', 'ignore', 'tools/model_converters/ifa_official_to_mmseg.py',
                           src, dst], cwd=root, capture_output=True, text=True)


def test_cli(root, tmp_path):
    src, dst = str(tmp_path / 'resnet50_1shot.pth'), str(tmp_path / 'out.pth')
    torch.save(official_trained_state_dict(50), src)
    proc = run_tool(root, src, dst)
    assert proc.returncode == 0, proc.stderr
    ckpt = safe_torch_load(dst)
    assert ckpt['meta']['format'] == 'trained' and ckpt['meta']['depth'] == 50
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])

    torch.save(imagenet_state_dict(101), src)
    assert run_tool(root, src, dst).returncode == 0
    ckpt = safe_torch_load(dst)
    assert ckpt['meta'] == dict(source='resnet50_1shot.pth', format='imagenet', depth=101)
    assert 'layer3.22.conv3.weight' in ckpt['state_dict'] and 'fc.weight' not in ckpt['state_dict']

    bad = official_trained_state_dict(50)
    bad['layer1.0.bn1.weight'] = torch.zeros(3)
    torch.save(bad, src)
    proc = run_tool(root, src, dst)
    assert proc.returncode != 0 and 'layer1.0.bn1.weight' in proc.stderr and src in proc.stderr
    os.remove(dst)
