"""tools/analysis_tools/benchmark.py at a tiny size, without the official code (issue 7)."""
import os

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
    script = load_script('tools/analysis_tools/benchmark.py')
    spec = dict(impl='ours', config=CONFIG, device='cpu', amp='bf16', mode='ifa', batch=1, shot=2, size=32, seed=1,
                threads=None, profile=False, official_root=None, out_file=str(tmp_path / 'out.pt'))
    result = script.run_worker(spec, ['flops', 'step', 'finish'])
    assert len(result['times']) == 1 and 0 < result['backbone_times'][0] < result['times'][0]
    assert result['flops_backbone'] > 0 and result['peak_rss'] >= result['base_rss'] > 0
    assert result['gemm_mm'] > 0 and os.path.exists(spec['out_file'])
