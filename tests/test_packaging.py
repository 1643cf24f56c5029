"""The wheel installs like an OpenMMLab package: `.mim` configs and tools, `mim train/test ifa_mmseg`, configs by name.

The wheel is built from a copy of the checkout and installed (without dependencies) into a fresh venv whose
only other packages are this interpreter's (a ``.pth`` line), then used from a folder outside the repository.
Needs openmim (`mim`); .ci/run installs it and sets IFA_REQUIRE_PACKAGING=1, which turns a skip into a failure.
The last tests use this checkout as it is installed (README: editable): configs by name, `ifa_mmseg::` names.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

SOURCES = ('setup.py', 'MANIFEST.in', 'README.md', 'requirements.txt', 'requirements-min.txt', 'ifa_mmseg', 'configs',
           'tools')


def _missing_tools():
    if importlib.util.find_spec('mim') is None:
        return 'openmim (`mim`) is not installed (.ci/run: pip install --no-deps openmim==0.3.9 ...)'
    if importlib.util.find_spec('setuptools') is None:
        return 'setuptools is not installed, so the wheel cannot be built without network access'
    return None


@pytest.fixture(scope='module')
def installed(root, tmp_path_factory):
    """(venv python, wheel, a work folder outside the repository)."""
    reason = _missing_tools()
    if reason is not None:
        if os.environ.get('IFA_REQUIRE_PACKAGING') == '1':
            pytest.fail(f'IFA_REQUIRE_PACKAGING=1 but {reason}')
        pytest.skip(reason)
    base = tmp_path_factory.mktemp('packaging')
    src = base / 'src'
    src.mkdir()
    for name in SOURCES:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy(path, src / name)
    # no build isolation: setuptools of this environment builds it, offline
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                           str(src), '-w', str(base / 'wheel')], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    wheel = next((base / 'wheel').glob('ifa_mmseg-*.whl'))
    venv = base / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (torch, mmseg, mim, pip, ...) after the venv's own; its editable
    # ifa_mmseg is not on that path (editable finders are .pth hooks, which a .pth path line does not run)
    with open(os.path.join(site, '_parent_env.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    proc = subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = base / 'work'
    work.mkdir()
    return python, wheel, work


def _run(installed, *args, timeout=600):
    python, _, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONWARNINGS')}
    return subprocess.run([python, '-W', 'ignore', *args], cwd=str(work), env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_wheel_carries_configs_and_tools(installed):
    names = set(zipfile.ZipFile(installed[1]).namelist())
    for name in ('ifa_mmseg/.mim/model-index.yml', 'ifa_mmseg/.mim/configs/ifa/deepglobe_1shot.py',
                 'ifa_mmseg/.mim/configs/_base_/default_runtime.py', 'ifa_mmseg/.mim/configs/demo/source.py',
                 'ifa_mmseg/.mim/tools/train.py', 'ifa_mmseg/.mim/tools/test.py',
                 'ifa_mmseg/.mim/tools/model_converters/ifa_official_to_mmseg.py',
                 'ifa_mmseg/datasets/splits/fss/val.txt', 'ifa_mmseg/datasets/splits/pascal/trn/fold0.txt'):
        assert name in names, name
    assert not any('__pycache__' in n for n in names)


CHECK_INSTALLED = '''
import os, ifa_mmseg
from mmengine.hub import get_config
from ifa_mmseg.engine.protocol import _source_checkpoint
mim = os.path.join(os.path.dirname(ifa_mmseg.__file__), '.mim', 'configs')
assert 'site-packages' in ifa_mmseg.__file__, ifa_mmseg.__file__
path = ifa_mmseg.get_config_path('ifa_mmseg::ifa/deepglobe_1shot.py')
assert path == os.path.join(mim, 'ifa', 'deepglobe_1shot.py') == ifa_mmseg.get_config_path('deepglobe_1shot'), path
# mmengine's package-scoped name (registered by `import ifa_mmseg`)
assert get_config('ifa_mmseg::ifa/deepglobe_1shot.py').filename == path
# an adaptation config inside .mim finds its source config there (cwd has no configs/)
demo = ifa_mmseg.get_config_path('demo/deepglobe.py')
assert _source_checkpoint('configs/demo/source.py', 1, demo) == os.path.join('work_dirs', 'source', 'epoch_6.pth')
print('ok')
'''


def test_configs_found_by_name(installed):
    proc = _run(installed, '-c', CHECK_INSTALLED)
    assert proc.stdout.strip() == 'ok', proc.stderr[-3000:]


def test_mim_train_then_test(installed):
    proc = _run(installed, '-c', 'from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark; '
                'make_synthetic_benchmark("data", size=32, images_per_class=2, num_tiles=12, lesions_per_class=1, '
                'num_xrays=2)')
    assert proc.returncode == 0, proc.stderr[-3000:]
    # `source.py` is found by name in ifa_mmseg/.mim/configs (demo/source.py)
    proc = _run(installed, '-m', 'mim', 'train', 'ifa_mmseg', 'source.py', '--cfg-options', 'data_root=data',
                'train_cfg.max_epochs=1', 'train_dataloader.batch_size=12')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert '.mim/tools/train.py' in log and 'Training finished successfully' in log
    assert len([line for line in log.splitlines() if 'mmcv ops:' in line]) == 1
    work = installed[2]
    ckpt = work / 'work_dirs' / 'source' / 'epoch_1.pth'
    assert ckpt.is_file()
    # demo/deepglobe.py: a name shared with other files, so by path (as ifa_mmseg.get_config_path gives it)
    proc = _run(installed, '-c', 'import ifa_mmseg; print(ifa_mmseg.get_config_path("demo/deepglobe.py"))')
    config = proc.stdout.strip()
    assert config.endswith(os.path.join('.mim', 'configs', 'demo', 'deepglobe.py')), proc.stderr[-3000:]
    proc = _run(installed, '-m', 'mim', 'test', 'ifa_mmseg', config, '--checkpoint', str(ckpt), '--cfg-options',
                'data_root=data', 'test_episodes=4', 'test_seeds=(0,1)')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert '.mim/tools/test.py' in log and 'Testing finished successfully' in log
    assert 'official.mIoU_ci95' in log and f'Load checkpoint from {ckpt}' in log


def test_a_user_config_inherits_a_shipped_one_by_package_scope(installed):
    """``_base_ = 'ifa_mmseg::demo/source.py'`` in the user's own folder: read from the wheel's .mim, built
    through the ``ifa_mmseg`` registry scope (children of mmseg's registries), trained by the installed tool."""
    work = installed[2]
    proc = _run(installed, '-c', 'from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark; '
                'make_synthetic_benchmark("scoped_data", size=32, images_per_class=2, num_tiles=12, '
                'lesions_per_class=1, num_xrays=2)')
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / 'mine.py').write_text("_base_ = 'ifa_mmseg::demo/source.py'\ndata_root = 'scoped_data'\n"
                                  'train_cfg = dict(max_epochs=1)\ntrain_dataloader = dict(batch_size=12)\n')
    proc = _run(installed, '-m', 'mim', 'train', 'ifa_mmseg', 'mine.py', '--work-dir', 'scoped')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (work / 'scoped' / 'epoch_1.pth').is_file()


def test_our_tools_take_a_shipped_config_name(tmp_path):
    """tools/train.py and tools/test.py accept 'ifa/deepglobe_1shot' as mim does; an unknown name is refused."""
    import argparse

    from ifa_mmseg.utils import load_config
    args = argparse.Namespace(config='ifa/deepglobe_1shot', local_rank=0, launcher='none', cfg_options=None,
                              amp=False, work_dir=str(tmp_path))
    cfg = load_config(args)
    assert cfg.filename.endswith(os.path.join('configs', 'ifa', 'deepglobe_1shot.py')) and cfg.shot == 1
    args.config = 'ifa/no_such_config'
    with pytest.raises(SystemExit, match='neither a file nor a shipped config name'):
        load_config(args)


def test_package_scoped_names_resolve_in_this_checkout(root, tmp_path):
    """In an editable install mmengine alone looks for site-packages/ifa_mmseg/.mim (absent); ``import ifa_mmseg``
    routes ``ifa_mmseg::`` names to this checkout's configs/: a string or list ``_base_``, ``get_config``."""
    import ifa_mmseg
    from mmengine.config import Config
    from mmengine.hub import get_config
    shipped = ifa_mmseg.get_config_path('ifa_mmseg::ifa/deepglobe_1shot.py')
    assert shipped == os.path.join(root, 'configs', 'ifa', 'deepglobe_1shot.py')
    assert get_config('ifa_mmseg::ifa/deepglobe_1shot.py').filename == shipped
    with pytest.raises(ValueError, match='publishes no weights'):
        get_config('ifa_mmseg::ifa/deepglobe_1shot.py', pretrained=True)
    (tmp_path / 'one.py').write_text("_base_ = 'ifa_mmseg::ifa/deepglobe_1shot.py'\nshot = 5\n")
    (tmp_path / 'local.py').write_text('extra = 1\n')
    (tmp_path / 'many.py').write_text("_base_ = ['ifa_mmseg::ifa/deepglobe_1shot.py', './local.py']\n")
    one, many = Config.fromfile(str(tmp_path / 'one.py')), Config.fromfile(str(tmp_path / 'many.py'))
    direct = Config.fromfile(shipped)
    assert one.shot == 5 and many.shot == direct.shot == 1 and many.extra == 1
    assert one.source_config == many.source_config == direct.source_config
    # mmengine's scope for an inherited package config: its registries are ifa_mmseg.registry's
    assert one.model._scope_ == many.model._scope_ == 'ifa_mmseg' and one.model.type == direct.model.type


def test_a_misspelt_shipped_name_is_named_with_the_closest(tmp_path):
    """get_config_path, `_base_ = 'ifa_mmseg::...'`, get_config and our tools' load_config name the name asked
    for and the closest shipped configs."""
    import argparse

    from mmengine.config import Config
    from mmengine.hub import get_config

    from ifa_mmseg import get_config_path
    from ifa_mmseg.utils import load_config
    closest = "the closest are ['ifa/deepglobe_1shot.py', 'ifa/deepglobe_5shot.py'"
    with pytest.raises(FileNotFoundError) as err:
        get_config_path('deepglobe_1shoot')
    assert "named 'deepglobe_1shoot'; " + closest in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        get_config('ifa_mmseg::ifa/deepglobe_1shoot.py')
    assert "named 'ifa_mmseg::ifa/deepglobe_1shoot.py'; " + closest in str(err.value)
    mine = tmp_path / 'mine.py'
    mine.write_text("_base_ = ['ifa_mmseg::ifa/deepglobe_1shoot.py']\n")
    with pytest.raises(FileNotFoundError) as err:
        Config.fromfile(str(mine))
    assert f"{mine}: _base_: no shipped ifa_mmseg config named 'ifa_mmseg::ifa/deepglobe_1shoot.py'; " + closest \
        in str(err.value)
    args = argparse.Namespace(config='ifa/deepglobe_1shoot', local_rank=0, launcher='none', cfg_options=None,
                              amp=False, work_dir=str(tmp_path))
    with pytest.raises(SystemExit, match=re.escape("named 'ifa/deepglobe_1shoot'; " + closest)):
        load_config(args)
    args.config = str(mine)  # a user's config whose _base_ is misspelt: the tools exit with the message, no traceback
    with pytest.raises(SystemExit, match=re.escape(f"error: {mine}: _base_: no shipped ifa_mmseg config named")):
        load_config(args)


def test_a_user_config_inherits_by_package_scope_in_this_checkout(root, tmp_path):
    """Our tools train and test from configs in another folder that inherit shipped ones by ``ifa_mmseg::``
    (dicts of scope ``ifa_mmseg``, built through its registries), on generated data."""
    from ifa_mmseg.datasets.synthetic import make_synthetic_benchmark

    from .helpers.launch import run
    data = str(tmp_path / 'data')
    make_synthetic_benchmark(data, size=32, images_per_class=2, num_tiles=12, lesions_per_class=1, num_xrays=2)
    source, target = tmp_path / 'source.py', tmp_path / 'target.py'
    source.write_text(f"_base_ = 'ifa_mmseg::demo/source.py'\ndata_root = {data!r}\n"
                      'train_cfg = dict(max_epochs=1)\ntrain_dataloader = dict(batch_size=12)\n')
    target.write_text(f"_base_ = ['ifa_mmseg::demo/deepglobe.py']\ndata_root = {data!r}\n"
                      'test_episodes = 4\ntest_seeds = (0, 1)\n')
    proc = run(root, 'tools/train.py', str(source), '--work-dir', str(tmp_path / 'source'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = tmp_path / 'source' / 'epoch_1.pth'
    proc = run(root, 'tools/test.py', str(target), str(ckpt), '--work-dir', str(tmp_path / 'test'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'results over episode seeds' in log and 'official.mIoU_ci95' in log and f'Load checkpoint from {ckpt}' in log
