"""tools/analysis_tools/benchmark_data.py on a tiny synthetic layout, without the official code (issue 3, item 8)."""
import pytest

from tests.helpers.scripts import load_script


def test_prints_a_row_per_shot_and_worker_count(capsys):
    script = load_script('tools/analysis_tools/benchmark_data.py')
    assert script.main(['--synthetic', '--tiles', '12', '--tile-size', '48', '--episodes', '6', '--batch-size', '3',
                        '--shots', '1', '5', '--workers', '0', '2', '--warmup', '0', '--repeats', '2']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('wrote 12 Deepglobe-like 48x48 JPEG tiles')
    assert lines[1].split()[:5] == ['dataset', 'shot', 'workers', 'batch', 'ours'] and 'official' not in lines[1]
    rows = [line.split() for line in lines[2:]]
    assert [row[:4] for row in rows] == [['deepglobe', str(s), str(w), '3'] for s in (1, 5) for w in (0, 2)]
    for row in rows:  # median [min-max]
        low, high = map(float, row[5].strip('[]').split('-'))
        assert len(row) == 6 and 0 < low <= float(row[4]) <= high


def test_synthetic_layout_is_deepglobe_only():
    with pytest.raises(SystemExit):
        load_script('tools/analysis_tools/benchmark_data.py').parse_args(['--synthetic', '--dataset', 'isic'])
