"""FewShotLocalVisualizer (episode pictures), FewShotVisualizationHook's worst-N selection."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample

import tests.helpers.recording_vis_backend  # noqa: F401  (registers RecordingVisBackend)
from ifa_mmseg.engine import FewShotVisualizationHook
from ifa_mmseg.visualization import FewShotLocalVisualizer, episode_iou, episode_panel, overlay
from ifa_mmseg.visualization.episode_panel import GT_COLOUR, PRED_COLOUR, SUPPORT_COLOUR

GREY = 100


def sample(k: int = 2, size: int = 40, ori_shape=(60, 120), support_shapes=((40, 80), (80, 40)),
           class_id: int = 1, episode: int = 3, seed: int = 0, pred_shift: int = 0) -> SegDataSample:
    """A grey episode: square masks in the middle of every image, the prediction shifted by ``pred_shift``."""
    s = SegDataSample()
    s.support_imgs = torch.full((k, 3, size, size), GREY, dtype=torch.uint8)
    m = torch.zeros(k, size, size, dtype=torch.uint8)
    m[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    s.support_masks = m
    s.gt_sem_seg = PixelData(data=m[:1].long())
    s.pred_sem_seg = PixelData(data=torch.roll(m[:1].long(), pred_shift, 2))
    meta = dict(ori_shape=ori_shape, class_id=class_id, episode=episode, episode_seed=seed)
    if support_shapes is not None:
        meta['support_ori_shapes'] = list(support_shapes)[:k]
    s.set_metainfo(meta)
    return s


def query(size: int = 40) -> np.ndarray:
    return np.full((size, size, 3), GREY, np.uint8)


@pytest.fixture(scope='module')
def vis() -> FewShotLocalVisualizer:
    return VISUALIZERS.build(dict(type='FewShotLocalVisualizer', name='test_vis', classes=('road', 'forest')))


def column_runs(panel: np.ndarray, row: int):
    """(start, end) column ranges of non-white pixels in ``row``: the tiles."""
    busy = np.any(panel[row] != 255, axis=-1)
    edges = np.flatnonzero(np.diff(np.r_[0, busy.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2]))


def test_each_image_in_its_aspect_ratio_upscaled_and_titled(vis):
    panel = vis.draw_episode(query(), sample())
    # tile row: near the bottom of the panel
    tiles = column_runs(panel, panel.shape[0] - vis.gap - 5)
    widths = [b - a for a, b in tiles]
    assert widths == [512, 128, 512, 512]  # 40x80, 80x40 supports, 60x120 query (h x w) at 256 px high
    tile_h = np.flatnonzero(np.any(panel[:, tiles[0][0] + 3] != 255, axis=-1))
    assert tile_h.max() - tile_h.min() + 1 >= 256  # small images upscaled (plus the title swatch above)
    # titles and header: dark text above the tiles
    text_rows = panel[:panel.shape[0] - 256 - vis.gap]
    assert (text_rows.min(-1) < 60).sum() > 200
    assert vis.header(sample()) == ['class: forest   IoU: 100.0%   seed 0   episode 3']
    assert vis.header(sample(pred_shift=10), title='T')[0] == 'T'
    assert 'IoU: 33.3%' in vis.header(sample(pred_shift=10))[0]


def test_support_shapes_from_files_or_model_size(vis, tmp_path):
    from PIL import Image
    path = tmp_path / 's.png'
    Image.fromarray(np.zeros((30, 90, 3), np.uint8)).save(path)
    s = sample(k=1, support_shapes=None, ori_shape=(40, 40))
    s.set_metainfo(dict(support_paths=[str(path)]))
    panel = vis.draw_episode(query(), s)
    assert [b - a for a, b in column_runs(panel, panel.shape[0] - vis.gap - 5)] == [768, 256, 256]
    s = sample(k=1, support_shapes=None, ori_shape=(40, 40))  # no file: the model-size support, square
    panel = vis.draw_episode(query(), s)
    assert [b - a for a, b in column_runs(panel, panel.shape[0] - vis.gap - 5)] == [256, 256, 256]


def test_masks_filled_outlined_and_opacity(vis):
    s = sample(k=1, support_shapes=None, ori_shape=(40, 40))
    light = vis.draw_episode(query(), s, opacity=0.2)
    strong = vis.draw_episode(query(), s, opacity=0.8)
    none = vis.draw_episode(query(), s, opacity=0.0)
    bottom = light.shape[0] - vis.gap - 256
    (a0, _), (q0, _), (p0, _) = column_runs(light, bottom + 128)
    for x0, colour in ((a0, SUPPORT_COLOUR), (q0, GT_COLOUR), (p0, PRED_COLOUR)):
        centre = (bottom + 128, x0 + 128)
        assert not np.array_equal(light[centre], strong[centre])  # opacity changes the fill
        assert np.abs(strong[centre].astype(int) - colour).sum() < np.abs(light[centre].astype(int) - colour).sum()
        assert none[centre].tolist() == [GREY] * 3
        # the outline, in the mask colour, at the mask's edge (a quarter of the tile in), even without fill
        edge = none[bottom + 128, x0 + 64 - 3:x0 + 64 + 3]
        assert any(np.array_equal(p, colour) for p in edge)
        outside = (bottom + 10, x0 + 10)
        assert light[outside].tolist() == [GREY] * 3


def test_add_datasample_sends_to_backends_and_writes(tmp_path):
    vis = FewShotLocalVisualizer(name='test_vis_backend', save_dir=str(tmp_path),
                                 vis_backends=[dict(type='LocalVisBackend'),
                                               dict(type='RecordingVisBackend', record_file=str(tmp_path / 'r.jsonl'))])
    vis.add_datasample('a', query(), sample(), out_file=str(tmp_path / 'out' / 'a.png'), step=2)
    vis.add_datasample('b', query(), sample(), step=3)
    calls = [json.loads(line) for line in open(tmp_path / 'r.jsonl')]
    assert [(c['name'], c['step']) for c in calls] == [('a', 2), ('b', 3)]
    assert (tmp_path / 'out' / 'a.png').exists()
    local = sorted(p.name for p in (tmp_path / 'vis_data' / 'vis_image').iterdir())
    assert local == ['b_3.png']  # the local backend skips a picture written to out_file


def test_old_panel_helpers():
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    mask = torch.zeros(4, 4, dtype=torch.long)
    mask[0, 0] = 1
    out = overlay(img, mask, (200, 0, 0), alpha=0.5)
    assert out[0, 0].tolist() == [100, 0, 0] and out[1, 1].tolist() == [0, 0, 0]
    panel = episode_panel(torch.full((2, 3, 8, 8), 50, dtype=torch.uint8), torch.ones(2, 8, 8, dtype=torch.long),
                          torch.full((3, 8, 8), 100, dtype=torch.uint8), None, torch.zeros(4, 4, dtype=torch.long),
                          gap=2)
    assert panel.shape == (8, 4 * 8 + 3 * 2, 3)


def test_episode_iou():
    assert episode_iou(sample()) == 1.0
    assert episode_iou(sample(pred_shift=10)) == pytest.approx(1 / 3)
    s = sample()
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 20, 20, dtype=torch.long))  # other size: resized
    assert episode_iou(s) == 0.0


def test_hook_draws_the_worst_episodes_per_class_and_seed(tmp_path):
    """rule='worst': per class and seed, the N lowest-IoU episodes, drawn when the seed ends."""
    drawn = []

    class Recorder(FewShotLocalVisualizer):
        def add_datasample(self, name, image, data_sample=None, **kwargs):
            drawn.append((name, round(episode_iou(data_sample), 3), kwargs['out_file']))

    runner = SimpleNamespace(visualizer=Recorder(name='test_vis_worst'), iter=0, log_dir=str(tmp_path),
                             test_loop=SimpleNamespace(current_seed=0))
    hook = FewShotVisualizationHook(draw=True, show_dir='pics', num_episodes=2, rule='worst')
    hook.before_test(runner)
    shifts = {0: [0, 10, 4, 16, 2, 8], 1: [6, 0, 0, 12, 2, 4]}  # per seed, episode e: class e % 2
    for seed, seed_shifts in shifts.items():
        runner.test_loop.current_seed = seed
        for batch in range(3):
            eps = [2 * batch, 2 * batch + 1]
            samples = [sample(class_id=e % 2, episode=e, seed=seed, pred_shift=seed_shifts[e]) for e in eps]
            data = dict(inputs=[torch.full((3, 40, 40), GREY, dtype=torch.uint8)] * 2, data_samples=samples)
            hook.after_test_iter(runner, batch, data, samples)
        if seed == 0:
            assert drawn == []  # nothing before the seed ends
    hook.after_test_epoch(runner, {})
    names = [d[0] for d in drawn]
    # seed 0: class 0 episodes 0, 2, 4 (shifts 0, 4, 2) -> worst 2, 4; class 1 episodes 1, 3, 5 (10, 16, 8) -> 3, 1
    # seed 1: class 0 (6, 0, 2) -> 0, 4; class 1 (0, 12, 4) -> 3, 5
    assert names == ['seed0_episode_00002', 'seed0_episode_00004', 'seed0_episode_00003', 'seed0_episode_00001',
                     'seed1_episode_00000', 'seed1_episode_00004', 'seed1_episode_00003', 'seed1_episode_00005']
    assert drawn[0][2] == str(tmp_path / 'pics' / 'seed0' / 'episode_00002.png')  # relative: under the log dir
    assert len(hook._worst) == 0


def test_hook_first_rule_and_bad_rule(tmp_path):
    drawn = []

    class Recorder(FewShotLocalVisualizer):
        def add_datasample(self, name, image, data_sample=None, **kwargs):
            drawn.append((name, kwargs['out_file']))

    runner = SimpleNamespace(visualizer=Recorder(name='test_vis_first'), iter=0, log_dir=str(tmp_path),
                             test_loop=SimpleNamespace(current_seed=1))
    hook = FewShotVisualizationHook(draw=True, num_episodes=1)
    samples = [sample(episode=e) for e in range(2)]
    hook.after_test_iter(runner, 0, dict(inputs=[torch.zeros(3, 40, 40, dtype=torch.uint8)] * 2,
                                         data_samples=samples), samples)
    assert drawn == [('seed1_episode_00000', None)]  # no show_dir: the vis backends only
    with pytest.raises(ValueError, match='rule'):
        FewShotVisualizationHook(rule='best')


def test_tools_test_show_dir_sends_pictures_to_the_config_backends(root, tmp_path):
    """tools/test.py --show-dir (relative: under WORK_DIR/<timestamp>/) --vis-rule worst with a recording backend."""
    from tests.helpers.launch import TOY_CONFIG, run
    config = tmp_path / 'recording.py'
    config.write_text(f"_base_ = ['{root}/{TOY_CONFIG}']\n"
                      "custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.toy_episodes', "
                      "'tests.helpers.recording_vis_backend'], allow_failed_imports=False)\n"
                      "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
                      "dict(type='RecordingVisBackend')])\n")
    ckpt = tmp_path / 'empty.pth'
    # random weights, loaded as such on request: only the pictures matter
    torch.save(dict(state_dict={}, meta={}), ckpt)
    work = tmp_path / 'work'
    proc = run(root, 'tools/test.py', str(config), str(ckpt), '--work-dir', str(work), '--show-dir', 'pics',
               '--num-vis', '1', '--vis-rule', 'worst', '--cfg-options', 'model.strict_load=False')
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log_dir, ) = [p for p in work.iterdir() if p.is_dir()]
    pictures = sorted(p.relative_to(log_dir / 'pics').as_posix() for p in (log_dir / 'pics').rglob('*.png'))
    assert len(pictures) == 6 and all(p.startswith(f'seed{s}/') for s in range(3) for p in pictures[2 * s:2 * s + 2])
    calls = [json.loads(line) for line in open(log_dir / 'vis_data' / 'images.jsonl')]
    assert sorted(c['name'] for c in calls) == sorted(p.replace('/', '_')[:-4] for p in pictures)
    assert all(c['shape'][0] > 256 and c['shape'][2] == 3 for c in calls)
    assert not (log_dir / 'vis_data' / 'vis_image').exists()  # the local backend: the pictures are in pics/
