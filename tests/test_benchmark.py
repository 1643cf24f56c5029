"""tools/analysis_tools/benchmark.py at a tiny size, without the official code (issue 7)."""
import os

from ifa_mmseg.analysis.benchmark import run_step_worker
from tests.helpers.scripts import ROOT, load_script

CONFIG = os.path.join(ROOT, 'configs', 'ifa', 'deepglobe_1shot.py')


def test_prints_a_row_per_mode(capsys):
    script = load_script('tools/analysis_tools/benchmark.py')
    assert script.main([CONFIG, '--size', '64', '--cases', '1x1', '--repeats', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('cpu: ') and lines[1].startswith('python ')
    header = next(i for i, line in enumerate(lines) if line.startswith('impl'))
    rows = [line.split() for line in lines[header + 1:header + 4]]
    assert [row[:6] for row in rows] == [['ours', 'cpu', 'fp32', mode, '1', '1'] for mode in ('eval', 'source', 'ifa')]
    for row in rows:
        low, high = map(float, row[7].strip('[]').split('-'))
        assert low <= float(row[6]) <= high and float(row[16]) > 0  # median in [min-max]; backbone GFLOP
    assert not any('official' in line for line in lines)
    assert lines[-1].startswith('load average at the end')


def test_bf16_autocast_step_on_cpu(tmp_path):
    """The worker's autocast path, served in-process: FLOPs, one timed pass, memory, GEMM rate."""
    spec = dict(impl='ours', config=CONFIG, device='cpu', amp='bf16', mode='ifa', batch=1, shot=2, size=32, seed=1,
                threads=None, profile=False, official_root=None, out_file=str(tmp_path / 'out.pt'))
    result = run_step_worker(spec, ['flops', 'step', 'finish'])
    assert len(result['times']) == 1 and 0 < result['backbone_times'][0] < result['times'][0]
    assert result['flops_backbone'] > 0 and result['peak_rss'] >= result['base_rss'] > 0
    assert result['gemm_mm'] > 0 and os.path.exists(spec['out_file'])


def test_gpu_check_smoke_on_cpu(capsys, tmp_path):
    """tools/analysis_tools/gpu_check.py at a tiny size: a row per (mode, precision, implementation), ratios."""
    import json
    script = load_script('tools/analysis_tools/gpu_check.py')
    out = tmp_path / 'check.json'
    assert script.main(['--device', 'cpu', '--size', '64', '--repeats', '1', '--warmup', '1', '--train-batch', '2',
                        '--eval-batch', '3', '--amp', 'fp32', 'bf16', '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('device: cpu')
    rows = [line.split() for line in lines if line.split()[:1] in (['source'], ['ifa'], ['eval'])
            and line.split()[1].isdigit()]
    assert [row[:5] for row in rows] == [[mode, str(b), '1', amp, impl] for mode, b in (('source', 2), ('ifa', 2),
                                                                                   ('eval', 3))
                                         for amp in ('fp32', 'bf16') for impl in ('select', 'masked')]
    results = json.loads(out.read_text())['results']
    assert len(results) == 12 and all(r['median'] > 0 and len(r['times']) == 1 for r in results)
    for r in results:  # the static path gives the selecting path's outputs
        assert r['rel_diff'] <= (1e-5 if r['amp'] == 'fp32' else 5e-2), r
    assert sum('masked vs select' in line for line in lines) == 6
    assert sum('bf16 vs fp32' in line for line in lines) == 6
