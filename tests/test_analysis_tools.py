"""Analysis tools: episode pictures, the resolved config, FLOPs per episode; tools run from any directory (issue 13)."""
import csv
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import fake_layouts
from tests.helpers.scripts import ROOT, load_script

CONFIG_1SHOT = os.path.join(ROOT, 'configs', 'ifa', 'deepglobe_1shot.py')
CONFIG_5SHOT = os.path.join(ROOT, 'configs', 'ifa', 'deepglobe_5shot.py')


def run_tool(args, cwd, timeout=300):
    """``python ROOT/tools/...`` from ``cwd`` (not the repository), as a user would."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)
    return subprocess.run([sys.executable, *args], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('deepglobe')
    fake_layouts.write_deepglobe(str(root))
    return str(root)


# ------------------------------------------------------------------ browse_episodes.py
def test_browse_test_episodes_from_another_directory(data_root, tmp_path):
    proc = run_tool([os.path.join(ROOT, 'tools', 'analysis_tools', 'browse_episodes.py'), CONFIG_5SHOT, '--num', '3',
                     '--cfg-options', f'data_root={data_root}', 'test_episodes=4'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / 'work_dirs' / 'deepglobe_5shot' / 'episodes_test'  # relative to the cwd, as work_dirs
    pictures = sorted(out.glob('*.png'))
    assert [p.name for p in pictures] == ['test_00000_agriculture.png', 'test_00001_urban.png',
                                          'test_00002_rangeland.png']
    # 5 supports and the query side by side
    w5, h5 = Image.open(pictures[0]).size
    assert w5 > 2 * h5
    with open(out / 'episodes.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['class_name'] for r in rows] == ['agriculture', 'urban', 'rangeland']
    assert all(len(r['supports'].split()) == 5 and r['query'].startswith(data_root) for r in rows)


def test_browse_adaptation_pseudo_queries(data_root, tmp_path):
    """--stage train of an adaptation config: the query is an augmented copy of one of the supports."""
    script = load_script('tools/analysis_tools/browse_episodes.py')
    out = tmp_path / 'train'
    paths = script.browse(script.parse_args([CONFIG_1SHOT, '--stage', 'train', '--num', '2', '--out', str(out),
                                             '--cfg-options', f'data_root={data_root}', 'test_episodes=4']))
    assert len(paths) == 2 and all(os.path.isfile(p) for p in paths)
    w1, h1 = Image.open(paths[0]).size
    assert h1 < w1  # one support and the query side by side
    with open(out / 'episodes.csv') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert row['query'] == row['supports'] and row['pseudo_query_of_support'] == '0'
    assert not (tmp_path / 'support_pool.json').exists()


def test_browse_reports_a_missing_stage(data_root):
    script = load_script('tools/analysis_tools/browse_episodes.py')
    source = os.path.join(ROOT, 'configs', 'ifa', 'pascal_source_1shot.py')
    with pytest.raises(SystemExit, match='no test_dataloader.dataset; try --stage train'):
        script.browse(script.parse_args([source, '--cfg-options', f'data_root={data_root}']))


# ------------------------------------------------------------------ print_config.py
def test_print_config_resolved_and_unresolved(capsys):
    script = load_script('tools/misc/print_config.py')
    assert script.main([CONFIG_5SHOT, '--cfg-options', 'data_root=/somewhere']) == 0
    resolved = capsys.readouterr().out
    assert 'resolved (what the runner builds)' in resolved
    assert "official_batch_size=48" in resolved and 'shot=5' in resolved and "data_root='/somewhere'" in resolved
    assert "load_from = 'work_dirs/pascal_source_5shot/epoch_20.pth'" in resolved
    assert script.main([CONFIG_5SHOT, '--unresolved']) == 0
    raw = capsys.readouterr().out
    assert 'as written' in raw and 'official_batch_size' not in raw and 'load_from = None' in raw


def test_print_config_refuses_a_contradiction():
    script = load_script('tools/misc/print_config.py')
    with pytest.raises(SystemExit, match='contradicts shot=1'):
        script.main([CONFIG_1SHOT, '--cfg-options', 'test_dataloader.dataset.shot=5'])


# ------------------------------------------------------------------ FLOPs, benchmark
def test_get_flops_reuses_the_benchmark_counter(capsys):
    script = load_script('tools/analysis_tools/get_flops.py')
    from mmengine import Config
    assert script.input_size(Config.fromfile(CONFIG_1SHOT)) == 400
    assert script.main([CONFIG_5SHOT, '--size', '32']) == 0
    out = capsys.readouterr().out
    assert '5-shot, 32x32 input' in out
    mode, backbone, head, total = out.splitlines()[2].split()
    assert mode == 'eval' and float(backbone) > 0 and float(head) > 0
    assert float(total) == pytest.approx(float(backbone) + float(head), abs=0.0011)
    from ifa_mmseg.analysis.benchmark import episode_flops
    flops = episode_flops(CONFIG_5SHOT, 5, 32)
    assert float(backbone) == pytest.approx(flops['backbone'] / 1e9, abs=0.0005)
    one_shot = episode_flops(CONFIG_5SHOT, 1, 32)
    assert flops['backbone'] == 3 * one_shot['backbone']  # (K + 1) images: 6 against 2


def test_tools_do_not_import_from_tests():
    for path in glob.glob(os.path.join(ROOT, 'tools', '**', '*.py'), recursive=True):
        with open(path) as f:
            text = f.read()
        assert not re.search(r'^\s*(from|import)\s+tests\b', text, re.M), path


def test_tools_import_shared_code_from_the_package():
    """What tools share lives in ifa_mmseg (e.g. ifa_mmseg/analysis/benchmark.py): no tool edits sys.path to reach
    another's code."""
    for path in glob.glob(os.path.join(ROOT, 'tools', '**', '*.py'), recursive=True):
        with open(path) as f:
            assert 'sys.path' not in f.read(), path


# ------------------------------------------------------------------ tools from another directory
def test_train_and_test_tools_from_another_directory(data_root, tmp_path):
    for tool in ('train.py', 'test.py', 'infer.py', 'demo.py'):
        proc = run_tool([os.path.join(ROOT, 'tools', tool), '--help'], cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and 'usage' in proc.stdout, (tool, proc.stderr[-2000:])
    # the source stage is found through the config's project, its checkpoint under the cwd's work_dirs
    proc = run_tool([os.path.join(ROOT, 'tools', 'train.py'), CONFIG_1SHOT, '--cfg-options',
                     f'data_root={data_root}'], cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert 'checkpoint to start from not found: work_dirs/pascal_source_1shot/epoch_20.pth' in proc.stderr
    assert 'python tools/train.py configs/ifa/pascal_source_1shot.py' in proc.stderr


def test_demo_config_paths_do_not_depend_on_the_cwd():
    demo = load_script('tools/demo.py')
    for path in (demo.SOURCE_CONFIG, demo.TARGET_CONFIG):
        assert os.path.isabs(path) and os.path.isfile(path)


def test_quick_demo_from_another_directory(tmp_path):
    """Every stage of the demo, started from a directory that is not the repository."""
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    proc = run_tool([os.path.join(ROOT, 'tools', 'demo.py'), '--quick', '--num-vis', '1', '--work-dir', 'demo'],
                    cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (cwd / 'demo' / 'demo_results.json').is_file()
    # each stage logs into its own folder
    for stage in ('source', 'source_only', 'control', 'control/test', 'adapted', 'adapted/test'):
        assert glob.glob(str(cwd / 'demo' / stage / '*' / '*.log')), stage


# ------------------------------------------------------------------ model zoo metafile (issue 13, item 8)
PAPER = {('deepglobe', 1): 50.63, ('deepglobe', 5): 58.76, ('isic', 1): 66.34, ('isic', 5): 69.77,
         ('chestxray', 1): 73.96, ('chestxray', 5): 74.59, ('fss1000', 1): 80.08, ('fss1000', 5): 82.36}


def test_metafile_lists_every_config_with_a_paper_number():
    import yaml
    with open(os.path.join(ROOT, 'configs', 'ifa', 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    (collection, ) = meta['Collections']
    assert collection['Name'] == 'IFA' and collection['Paper']['URL']
    models = meta['Models']
    assert len({m['Name'] for m in models}) == len(models)
    listed = {}
    for model in models:
        assert model['In Collection'] == 'IFA'
        assert os.path.isfile(os.path.join(ROOT, model['Config'])), model['Config']
        (result, ) = model['Results']
        assert result['Task'] and result['Dataset']
        listed[model['Config']] = (model['Metadata']['Shot'], result['Metrics']['official.mIoU'])
        assert 'Weights' not in model  # the official release has no stable URL to give: see the file's header
    # the configs with a published number: the official-protocol adaptation configs of every target and shot
    expected = {f'configs/ifa/{target}_{shot}shot_official.py': (shot, number)
                for (target, shot), number in PAPER.items()}
    assert listed == expected
    with open(os.path.join(ROOT, 'configs', 'ifa', 'README.md')) as f:  # the model zoo page, beside the metafile
        readme = f.read()
    section = readme[readme.index('## Expected results'):]
    section = section[:section.index('\n## ')]
    for (target, shot), number in PAPER.items():
        row = next(line for line in section.splitlines() if f'`configs/ifa/{target}_{shot}shot_official.py`' in line)
        assert f'| {number:.2f} |' in row and row.rstrip().endswith('| no |')


# ------------------------------------------------------------------ benchmark_nonfinite_guard.py
def test_nonfinite_guard_benchmark_prints_its_table(tmp_path):
    proc = run_tool([os.path.join(ROOT, 'tools', 'analysis_tools', 'benchmark_nonfinite_guard.py'), CONFIG_1SHOT,
                     '--size', '64', '--batch', '2', '--repeats', '1'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = dict(re.findall(r'^\| (eval|train) \| [\d.]+ \| [\d.e+-]+ \| ([\d.]+) \|$', proc.stdout, re.M))
    assert sorted(rows) == ['eval', 'train'] and all(float(r) >= 0.9 for r in rows.values())
    assert 'before_save_checkpoint (once per saved checkpoint)' in proc.stdout


# ------------------------------------------------------------------ compare_models.py
SMALL_DEMO = """_base_ = '{root}/configs/demo/deepglobe.py'
data_root = '{data}'
test_episodes = 2
test_seeds = (0, 1)
test_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(48, 48))]))
"""


def test_compare_models_writes_one_table_with_the_same_columns(tmp_path):
    """Two runs of one checkpoint, as configured and per episode: a row each, the protocol keys each resolved, the
    metrics each run computed, in Markdown, CSV and JSON."""
    from mmengine.registry import init_default_scope

    from ifa_mmseg.datasets import make_synthetic_benchmark
    from tests.helpers.models import save_random_demo_checkpoint
    make_synthetic_benchmark(str(tmp_path / 'data'), seed=3, size=48, images_per_class=4, num_tiles=18)
    init_default_scope('mmseg')
    ckpt = save_random_demo_checkpoint(ROOT, str(tmp_path / 'random.pth'))
    config = tmp_path / 'small.py'
    config.write_text(SMALL_DEMO.format(root=ROOT, data=tmp_path / 'data'))
    tool = load_script('tools/analysis_tools/compare_models.py')
    out = tmp_path / 'compare'
    tool.main(['--run', str(config), ckpt, '--run', str(config), ckpt, 'episode', '--cfg-options',
               'episode_adaptation.steps=1', '--work-dir', str(out)])
    with open(out / 'comparison.csv') as f:
        rows = list(csv.DictReader(f))
    records = json.loads((out / 'comparison.json').read_text())
    assert [r['adaptation_labels'] for r in rows] == ['pool', 'episode'] and len(records) == 2
    for r, record in zip(rows, records):
        assert list(r) == list(tool.COLUMNS)
        assert (r['model'], r['backbone'], r['target'], r['seeds x episodes']) == (
            'IFA', 'ResNetV1c-18', 'DeepglobeDataset', '2 x 2')
        metrics = record['metrics']
        assert r['mIoU'] == f"{metrics['mIoU']:.2f} ± {metrics['mIoU_ci95']:.2f}"
        assert r['official.mIoU'] == f"{metrics['official.mIoU']:.2f} ± {metrics['official.mIoU_ci95']:.2f}"
        assert record['protocol']['adaptation_labels'] == r['adaptation_labels']
    assert records[0]['metrics']['mIoU'] != records[1]['metrics']['mIoU']  # the episode row adapted
    table = (out / 'comparison.md').read_text().splitlines()
    assert len(table) == 4 and table[0] == '| ' + ' | '.join(tool.COLUMNS) + ' |'
