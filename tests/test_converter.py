import json
import os
import re
import struct
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


class RunsCode:
    """A pickled object whose unpickling would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def write_bad_sources(folder) -> dict:
    """Source files the converter must refuse, by case: the path and phrases its message must hold."""
    cases = dict(missing=(folder / 'missing.pth', ['no such file']),
                 empty=(folder / 'empty.pth', ['empty (0 bytes)']),
                 text=(folder / 'notes.pth', ['not a PyTorch checkpoint']),
                 random=(folder / 'random.pth', ['not a PyTorch checkpoint']),
                 safetensors=(folder / 'model.safetensors', ['is a safetensors file, not an official IFA/SSP',
                                                             'safetensors.torch.load_file']),
                 malicious=(folder / 'evil.pth', ['refused: the file holds non-tensor objects', 'unsafe',
                                                  f'({os.system.__module__}.system)']))
    cases['empty'][0].write_bytes(b'')
    cases['text'][0].write_text('layer0.0.0.weight 0.1 0.2\n')
    cases['random'][0].write_bytes(bytes(range(256)) * 8)
    header = json.dumps({'w': dict(dtype='F32', shape=[1], data_offsets=[0, 4])}).encode()
    cases['safetensors'][0].write_bytes(struct.pack('<Q', len(header)) + header + bytes(4))
    torch.save(dict(official_trained_state_dict(50), payload=RunsCode(str(folder / 'code_ran'))), cases['malicious'][0])
    return cases


def test_cli_refuses_bad_sources_naming_them(root, tmp_path):
    for case, (src, phrases) in write_bad_sources(tmp_path).items():
        proc = run_tool(root, str(src), str(tmp_path / 'out.pth'))
        assert proc.returncode == 1, case
        assert str(src) in proc.stderr and all(p in proc.stderr for p in phrases), (case, proc.stderr)
        assert 'Traceback' not in proc.stderr and 'weights_only=False' not in proc.stderr, case
    assert not (tmp_path / 'code_ran').exists() and not (tmp_path / 'out.pth').exists()


def test_cli_checks_the_destination_before_loading(root, tmp_path):
    src = tmp_path / 'resnet50_1shot.pth'
    torch.save(official_trained_state_dict(50), src)
    mtime = src.stat().st_mtime_ns
    proc = run_tool(root, str(src), str(src))
    assert proc.returncode == 1 and f'{src} is the source file' in proc.stderr
    assert src.stat().st_mtime_ns == mtime
    dst = tmp_path / 'no_such_folder' / 'out.pth'
    proc = run_tool(root, str(src), str(dst))
    assert proc.returncode == 1
    assert f'cannot write {dst}: the folder {dst.parent} does not exist' in proc.stderr
    text = tmp_path / 'notes.pth'
    text.write_text('not weights')
    proc = run_tool(root, str(text), str(dst))  # checked before the source is loaded
    assert f'cannot write {dst}: the folder' in proc.stderr and 'not a PyTorch checkpoint' not in proc.stderr
    proc = run_tool(root, str(src), str(tmp_path))
    assert proc.returncode == 1 and f'cannot write {tmp_path}: it is a folder' in proc.stderr


def test_unwritable_destination_folder_is_named(tmp_path, monkeypatch):
    from ifa_mmseg.models.utils import weight_files  # both converters' destination check
    monkeypatch.setattr(weight_files.os, 'access', lambda path, mode: path != str(tmp_path))  # tests run as root
    with pytest.raises(ValueError, match=re.escape(f'cannot write {tmp_path / "out.pth"}: no write permission in '
                                                   f'{tmp_path}')):
        weight_files.check_destination(str(tmp_path / 'src.pth'), str(tmp_path / 'out.pth'))
