"""tools/analysis_tools/benchmark_adaptation.py: the demo model at 32 px, 2 steps, B=1 and B=2 (a fresh process
per route and B: the 'full-vmap' route, the same settings with another engine, is left out to keep it short)."""
import json
import os

import pytest

from tests.helpers.scripts import ROOT, load_script

DEMO = os.path.join(ROOT, 'configs', 'demo', 'deepglobe.py')
HEADER = ['config', 'px', 'route', 'steps x P, V', 'time / episode', 'time x plain', 'GFLOP / episode',
          'FLOPs x plain', 'peak B=1', 'peak B=2']


def seconds(cell: str) -> float:
    value, unit = cell.split()
    return float(value) * {'ms': 1e-3, 's': 1}[unit]


def test_table_of_routes(capsys, tmp_path):
    """A row per route; ratios are time / plain time and FLOPs / plain FLOPs; light costs fewer FLOPs than full; at
    B=2 each adapted route runs 1 of its 2 steps over all its pseudo-queries (full V=4, light V=2)."""
    script = load_script('tools/analysis_tools/benchmark_adaptation.py')
    out = tmp_path / 'bench.json'
    assert script.main(['--configs', DEMO, '--size', '32', '--routes', 'plain', 'full-loop', 'light', '--steps', '2',
                        '--memory-steps', '1', '--batch-sizes', '1', '2', '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [[c.strip() for c in line.split('|')[1:-1]] for line in lines[:8] if line.startswith('|')]
    assert cells[0] == HEADER
    rows = [dict(zip(HEADER, row)) for row in cells[1:]]
    assert [(r['config'], r['px'], r['route'], r['steps x P, V']) for r in rows] == [
        ('demo/deepglobe', '32', 'plain', '-'),
        ('demo/deepglobe', '32', 'full (loop)', '2 x 2, V=4 (--steps)'),
        ('demo/deepglobe', '32', 'light', '2 x 1, V=2 (--steps)')]
    plain_time, plain_flops = seconds(rows[0]['time / episode']), float(rows[0]['GFLOP / episode'])
    for r in rows:  # the cells have 3 significant digits
        assert float(r['time x plain']) == pytest.approx(seconds(r['time / episode']) / plain_time, rel=0.02)
        assert float(r['FLOPs x plain']) == pytest.approx(float(r['GFLOP / episode']) / plain_flops, rel=0.02)
    flops = {r['route']: float(r['GFLOP / episode']) for r in rows}
    assert 0 < flops['plain'] < flops['light'] < flops['full (loop)']
    assert [r['peak B=2'].endswith('GiB*') for r in rows] == [False, True, True]
    assert all(float(r[peak].split()[0]) > 0.1 for r in rows for peak in ('peak B=1', 'peak B=2'))
    assert any(line.startswith('* peak of a run with fewer steps') and 'full (loop) B=2: 1 of 2 steps, views=4' in line
               and 'light B=2: 1 of 2 steps, views=2' in line for line in lines)
    assert any(line.startswith('--steps 2:') for line in lines) and 'torch ' in lines[-2]

    results = json.loads(out.read_text())['results']
    assert [(r['route'], r['batch'], r['error']) for r in results] == [
        (route, b, None) for b in (1, 2) for route in ('plain', 'full-loop', 'light')]
    for r in results:
        assert len(r['times']) == (r['batch'] == 1) and r['peak_rss'] >= r['rss_before'] > 0
        assert r['flops'] > 0 if r['batch'] == 1 else r['flops'] is None
    cut = [r['adaptation'] for r in results if r['steps_cut']]
    assert cut == [dict(recipe='full', engine='loop', steps=1, views=4), dict(recipe='light', engine='loop', steps=1,
                                                                              views=2)]


def test_memory_settings_keep_the_bank():
    script = load_script('tools/analysis_tools/benchmark_adaptation.py')
    full = script.route_settings('full-vmap', None)
    assert script.memory_settings(full, 2) == (dict(full, steps=2, views=40), True)  # 20 steps x 2 queries
    assert script.memory_settings(full, 20) == (full, False)
    light = script.route_settings('light', 3)
    assert light == dict(recipe='light', engine='loop', steps=3)
    assert script.memory_settings(light, 1) == (dict(light, steps=1, views=3), True)  # 3 steps x 1 query
    bank = dict(light, views=2)
    assert script.memory_settings(bank, 1) == (bank, False)  # a fixed bank of views: all its steps
    assert script.memory_settings(None, 1) == (None, False)


def test_arguments():
    script = load_script('tools/analysis_tools/benchmark_adaptation.py')
    args = script.parse_args([])
    assert [script.config_label(c) for c in args.configs] == [
        'ifa/deepglobe_1shot', 'ifa/deepglobe_1shot_dinov2_vits14', 'demo/deepglobe']
    assert args.size == [400, 392, 96] and args.batch_sizes == [1, 12] and args.routes == list(script.ROUTES)
    assert script.parse_args(['--configs', DEMO, DEMO, '--size', '48']).size == [48, 48]
    for wrong in (['--batch-sizes', '12'], ['--configs', DEMO, '--size', '48', '64'], ['--steps', '0']):
        with pytest.raises(SystemExit):
            script.parse_args(['--configs', DEMO, *wrong])
