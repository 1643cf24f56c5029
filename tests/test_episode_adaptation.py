"""adaptation_labels='episode': per-episode adaptation at test time on each episode's supports only.

An episode's prediction must not depend on anything but its own supports, its query image and
its seed: not on the other episodes of its batch, their order, the number of processes, or the
query's own mask. The model here is the CPU demo's ResNet-18 (every convolution adapts, the RGB
stem included) from a random initialisation, at 48 px.
"""
import copy
import json
import os
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import DATASETS, MODELS

from ifa_mmseg.datasets import fewshot_collate, make_synthetic_benchmark
from ifa_mmseg.engine import FewShotRunner
from ifa_mmseg.engine.protocol import ProtocolError, resolve_protocol
from ifa_mmseg.models import EPISODE_RECIPES, EpisodeAdapter, episode_adaptation_settings
from ifa_mmseg.models.heads.ifa_head import grouped_cross_entropy

from tests.helpers import fake_layouts
from tests.helpers.launch import logged_metrics, run, run_sh
from tests.helpers.models import build_r50, save_random_demo_checkpoint

TOL = 1e-5
CHILD = """
_base_ = '{root}/configs/demo/deepglobe.py'
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.logits_dump'], allow_failed_imports=False)
load_from = '{ckpt}'
data_root = '{data}'
shot = {shot}
metrics = ('standard', )
test_episodes = 8
test_seeds = (0, )
adaptation_labels = 'episode'
episode_adaptation = dict(steps=3, queries_per_step=2, optimizer=dict(lr=0.05))
test_dataloader = dict(batch_size=3, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(48, 48))]))
"""


@pytest.fixture(scope='module')
def setup(root, tmp_path_factory):
    """Synthetic data, a randomly initialised demo model's checkpoint, 1- and 2-shot child configs."""
    tmp = tmp_path_factory.mktemp('episode')
    data = str(tmp / 'data')
    make_synthetic_benchmark(data, seed=3, size=48, images_per_class=4, num_tiles=18)
    ckpt = save_random_demo_checkpoint(root, str(tmp / 'random.pth'))
    configs = {}
    for shot in (1, 2):
        path = tmp / f'child_{shot}shot.py'
        path.write_text(CHILD.format(root=root, ckpt=ckpt, data=data, shot=shot))
        configs[shot] = str(path)
    return dict(tmp=tmp, data=data, ckpt=ckpt, configs=configs)


def resolved(path: str, **options) -> Config:
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    resolve_protocol(cfg)
    return cfg


def build(setup, shot: int = 1, **options):
    """The resolved test dataset and the model (checkpoint loaded, eval mode) of the child config."""
    cfg = resolved(setup['configs'][shot], **options)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, setup['ckpt'], map_location='cpu', logger='silent')
    return dataset, model.eval()


def logits_of(model, items) -> torch.Tensor:
    """[B, 2, H, W] prediction logits of packed dataset items, through the data preprocessor and predict."""
    data = model.data_preprocessor(fewshot_collate(copy.deepcopy(items)))
    with torch.no_grad():
        return torch.stack([s.seg_logits.data for s in model.predict(**data)])


# ---------------------------------------------------------------------------------------------- resolution
TARGETS = sorted(f'configs/ifa/{f}' for f in os.listdir('configs/ifa')
                 if f.endswith('.py') and not f.startswith('pascal_source'))


@pytest.mark.parametrize('path', TARGETS)
def test_every_target_config_resolves_episode_adaptation(root, path):
    """One key turns it on everywhere it acts; a single override of its settings reaches both places."""
    cfg = resolved(os.path.join(root, path), adaptation_labels='episode')
    settings = cfg.episode_adaptation
    assert cfg.test_dataloader.dataset.adapt_queries == EpisodeAdapter.from_settings(settings).num_queries > 0
    assert cfg.model.test_cfg.episode_adaptation == settings
    assert cfg.protocol['episode_adaptation'] == episode_adaptation_settings(settings)  # the recipe, spelt out
    cfg = resolved(os.path.join(root, path), adaptation_labels='episode', **{'episode_adaptation.recipe': 'full',
                                                                             'episode_adaptation.steps': 3,
                                                                             'episode_adaptation.optimizer.lr': 0.1})
    assert cfg.test_dataloader.dataset.adapt_queries == 3 * EPISODE_RECIPES['full']['queries_per_step']
    assert cfg.model.test_cfg.episode_adaptation.steps == 3
    assert cfg.model.test_cfg.episode_adaptation.optimizer.lr == 0.1
    assert cfg.protocol['episode_adaptation']['optimizer'] == dict(EPISODE_RECIPES['full']['optimizer'], lr=0.1)
    plain = resolved(os.path.join(root, path))
    assert 'adapt_queries' not in plain.test_dataloader.dataset
    assert 'episode_adaptation' not in (plain.model.get('test_cfg') or {})


def test_episode_has_no_training_stage(root, setup):
    """tools/train.py on a target config with adaptation_labels='episode' is refused with the route to take."""
    cfg = Config.fromfile(os.path.join(root, 'configs/demo/deepglobe.py'))
    cfg.merge_from_dict(dict(adaptation_labels='episode', data_root=setup['data'], load_from=setup['ckpt'],
                             work_dir=str(setup['tmp'] / 'train_refused')))
    runner = FewShotRunner.from_cfg(cfg)
    with pytest.raises(ProtocolError, match='adapts each test episode at test time and has no adaptation stage'):
        runner.train()


def test_unknown_adapted_parameter_is_refused_when_the_model_is_built(setup):
    with pytest.raises(ValueError, match=r"no parameter of the model is named \['backbone.nope'\]"):
        build(setup, **{'episode_adaptation.params': ['backbone.nope']})


# ------------------------------------------------------------------------------------------------ data
def test_pseudo_queries_are_augmented_supports_seeded_by_episode(setup):
    dataset, _ = build(setup, shot=2)
    item = dataset[4]
    sample = item['data_samples']
    assert sample.adapt_imgs.shape == (6, 3, 48, 48) and sample.adapt_imgs.dtype == torch.uint8
    assert sample.adapt_masks.shape == (6, 48, 48)
    sources = sample.metainfo['pseudo_query_sources']
    assert len(sources) == 6 and set(sources) <= {0, 1}
    for mask, j in zip(sample.adapt_masks, sources):
        # geometric augmentations keep the foreground area (flips, 90-degree turns, grid shuffle)
        assert int(mask.sum()) == int(sample.support_masks[j].sum()) > 0
    assert any(not torch.equal(q, sample.support_imgs[j]) for q, j in zip(sample.adapt_imgs, sources))
    again = dataset[4]['data_samples']
    assert torch.equal(again.adapt_imgs, sample.adapt_imgs)
    assert not torch.equal(dataset[5]['data_samples'].adapt_imgs[:1], sample.adapt_imgs[:1])
    # Deepglobe's pseudo-queries have the official 2x2 grid shuffle
    assert 'RandomGridShuffle' in repr(dataset.pseudo_query_pipeline)


# ----------------------------------------------------------------------------------------------- losses
def test_grouped_cross_entropy_is_each_groups_own_mean():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 2, 6, 6), torch.randint(0, 2, (5, 6, 6))
    target[1, :3] = 255
    group = torch.tensor([0, 0, 1, 2, 1])
    losses = grouped_cross_entropy(logits, target, group, 3)
    for g in range(3):
        rows = group == g
        assert torch.allclose(losses[g], F.cross_entropy(logits[rows], target[rows], ignore_index=255), atol=1e-6)
    one = grouped_cross_entropy(logits, target, torch.zeros(5, dtype=torch.long), 1)
    assert torch.allclose(one[0], F.cross_entropy(logits, target, ignore_index=255), atol=1e-6)


def test_episode_losses_equal_the_loss_of_each_episode_alone(setup):
    _, model = build(setup, shot=2)
    head = model.decode_head
    torch.manual_seed(1)
    b, shot = 3, 2
    feat_q, feat_s = torch.randn(b, 16, 6, 6), torch.randn(shot * b, 16, 6, 6)
    query_mask, support_masks = torch.randint(0, 2, (b, 24, 24)), torch.randint(0, 2, (shot * b, 24, 24))
    logits = head(feat_q, feat_s, support_masks.float(), query_mask=query_mask, training=True)
    losses = head.loss(logits, query_mask, support_masks, torch.arange(b), b)
    for e in range(b):
        rows = torch.arange(shot) * b + e
        alone = head(feat_q[e:e + 1], feat_s[rows], support_masks[rows].float(), query_mask=query_mask[e:e + 1],
                     training=True)
        expected = head.loss(alone, query_mask[e:e + 1], support_masks[rows])
        for key, value in expected.items():
            assert torch.allclose(losses[key][e], value, atol=1e-6), key


# ------------------------------------------------------------------------------------------ independence
@pytest.mark.parametrize('shot', [1, 2])
def test_prediction_is_independent_of_the_other_episodes(setup, shot):
    """Alone, in a batch, in another order, beside other images: the same logits (<= 1e-5)."""
    dataset, model = build(setup, shot=shot)
    items = [dataset[i] for i in range(4)]
    batch = logits_of(model, items)
    for i, item in enumerate(items):
        assert (logits_of(model, [item])[0] - batch[i]).abs().max() <= TOL, i
    assert (logits_of(model, items[::-1]).flip(0) - batch).abs().max() <= TOL
    # other episodes' images and masks replaced, and episode 0's own query mask changed
    changed = copy.deepcopy(items)
    torch.manual_seed(2)
    for item in changed[1:]:
        sample = item['data_samples']
        sample.support_imgs = torch.randint(0, 256, sample.support_imgs.shape, dtype=torch.uint8)
        sample.support_masks = 1 - sample.support_masks
        item['inputs'] = torch.randint(0, 256, item['inputs'].shape, dtype=torch.uint8)
    changed[0]['data_samples'].gt_sem_seg.data = 1 - changed[0]['data_samples'].gt_sem_seg.data
    after = logits_of(model, changed)
    assert (after[0] - batch[0]).abs().max() <= TOL
    assert (after[1:] - batch[1:]).abs().max() > 1e-2  # the others did change


def test_adaptation_changes_predictions_and_no_step_or_lr_zero_does_not(setup):
    """The gain has a control: lr 0 (and 0 steps) give the checkpoint's own prediction; the weights stay."""
    dataset, model = build(setup)
    items = [dataset[i] for i in range(3)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = logits_of(model, items)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    _, plain_model = build(setup, adaptation_labels='pool')
    plain_items = copy.deepcopy(items)
    for item in plain_items:
        del item['data_samples'].adapt_imgs, item['data_samples'].adapt_masks
    plain = logits_of(plain_model, plain_items)
    assert (adapted - plain).abs().max() > 0.1
    _, lr0 = build(setup, **{'episode_adaptation.optimizer.lr': 0.0})
    assert (logits_of(lr0, items) - plain).abs().max() <= TOL
    _, no_step = build(setup, **{'episode_adaptation.steps': 0})
    assert (logits_of(no_step, plain_items) - plain).abs().max() <= TOL


def test_two_runs_are_identical(setup):
    runs = []
    for _ in range(2):
        dataset, model = build(setup)
        runs.append(logits_of(model, [dataset[i] for i in range(3)]))
    assert torch.equal(runs[0], runs[1])


def test_optimizer_acts_per_episode():
    """Every allowed optimizer updates each episode's copy from that copy's gradient only."""
    adapter = EpisodeAdapter.from_settings(dict(recipe='full', optimizer=dict(type='Adam', lr=0.1)))
    from mmengine.registry import OPTIMIZERS
    torch.manual_seed(0)
    weights = torch.randn(3, 4, requires_grad=True)
    optimizer = OPTIMIZERS.build(dict(adapter.optimizer, params=[weights]))
    start = weights.detach().clone()
    weights.grad = torch.stack([torch.randn(4), torch.zeros(4), torch.randn(4)])
    optimizer.step()
    assert torch.equal(weights[1].detach(), start[1])
    with pytest.raises(ValueError, match="'LARS' is not one of"):
        EpisodeAdapter.from_settings(dict(recipe='full', optimizer=dict(type='LARS', lr=0.1)))


# ---------------------------------------------------------------------------------------------- the route
def test_tools_test_one_and_two_processes_give_the_same_logits(root, setup, tmp_path):
    """tools/test.py CONFIG CKPT (adaptation_labels='episode' in the child config) on 1 and on 2 processes."""
    dumps = {}
    for name in ('one', 'two'):
        out = str(tmp_path / f'{name}.pkl')
        config = tmp_path / f'{name}.py'
        config.write_text(f"_base_ = '{setup['configs'][1]}'\ntest_evaluator = [dict(type='FewShotIoUMetric'), "
                          f"dict(type='EpisodeLogitsDump', out_file='{out}')]\n")
        args = (str(config), setup['ckpt'], '--work-dir', str(tmp_path / name))
        env = dict(OMP_NUM_THREADS='1')
        proc = (run(root, 'tools/test.py', *args, env=env) if name == 'one' else
                run_sh(root, 'dist_test.sh', *args[:2], '2', *args[2:], port=29631, cwd=str(tmp_path), env=env))
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(out, 'rb') as f:
            dumps[name] = pickle.load(f)
    assert sorted(dumps['one']) == sorted(dumps['two']) == [(0, i) for i in range(8)]
    assert max(float((dumps['one'][k] - dumps['two'][k]).abs().max()) for k in dumps['one']) <= TOL
    metrics = logged_metrics(str(tmp_path / 'one'))
    assert metrics['mIoU'] == logged_metrics(str(tmp_path / 'two'))['mIoU']


def test_diverging_adaptation_stops_the_test_naming_the_episode(root, setup, tmp_path):
    """A learning rate that makes every episode's weights NaN: no metric, the episode named; or, asked for, the
    metrics with the count of such episodes beside them."""
    args = (setup['configs'][1], setup['ckpt'], '--cfg-options', 'episode_adaptation.optimizer.lr=1e6')
    proc = run(root, 'tools/test.py', *args, '--work-dir', str(tmp_path / 'stop'), env=dict(OMP_NUM_THREADS='1'))
    assert proc.returncode != 0 and 'results over episode seeds' not in proc.stdout + proc.stderr
    assert re.search(r'error: episode seed 0: episode 0 \(class \d+\): 4608 of 4608 logits are NaN or inf, so its '
                     r'prediction means nothing\. Likely causes: per-episode adaptation diverged', proc.stderr), \
        proc.stderr[-2000:]
    report = run(root, 'tools/test.py', *args, 'test_evaluator.nonfinite=report', '--work-dir',
                 str(tmp_path / 'report'), env=dict(OMP_NUM_THREADS='1'))
    assert report.returncode == 0, report.stderr[-3000:]
    assert '8 of 8 episodes have NaN or inf logits' in report.stdout + report.stderr
    assert logged_metrics(str(tmp_path / 'report'))['nonfinite_episodes'] == 8


@pytest.mark.parametrize('shot', [1, 2])
def test_ifa_r50_adapts_layer2_and_layer3_per_episode(root, shot):
    """The official R-50 (stem and layer1 frozen): what adapts by default, independence and the lr-0 control."""
    model = build_r50(root).eval()
    adapter = EpisodeAdapter(steps=2, queries_per_step=1, optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
                             params='trainable')
    names = adapter.parameter_names(model)
    assert names and all(n.startswith(('backbone.layer2.', 'backbone.layer3.')) for n in names)
    assert any(n.startswith('backbone.layer2.') for n in names) and any(n.startswith('backbone.layer3.') for n in names)
    torch.manual_seed(0)
    b, size = 3, 64
    supports, support_masks = torch.randn(b, shot, 3, size, size), (torch.rand(b, shot, size, size) > 0.6).long()
    queries, query_masks = torch.randn(b, 2, 3, size, size), (torch.rand(b, 2, size, size) > 0.6).long()

    def predict(idx, adapter):
        params = adapter.adapt(model, supports[idx], support_masks[idx], queries[idx], query_masks[idx])
        with torch.no_grad():
            return model.forward_episode(supports[idx, 0], supports[idx], support_masks[idx], params=params)['q_refine']

    batch = predict(slice(None), adapter)
    for i in range(b):
        assert (predict(slice(i, i + 1), adapter)[0] - batch[i]).abs().max() <= TOL
    control = EpisodeAdapter(steps=2, queries_per_step=1, optimizer=dict(type='SGD', lr=0.0, momentum=0.9),
                             params='trainable')
    with torch.no_grad():
        plain = model.forward_episode(supports[:, 0], supports, support_masks)['q_refine']
    assert (predict(slice(None), control) - plain).abs().max() <= TOL
    assert (batch - plain).abs().max() > 1e-3


@pytest.mark.parametrize('dataset_type', ['DeepglobeDataset', 'ISICDataset', 'ChestXrayDataset', 'FSS1000Dataset'])
def test_every_target_dataset_gives_pseudo_queries(tmp_path, dataset_type):
    """Each target's published layout, at its original image sizes: pseudo-queries of the model input size whose
    masks keep the support's foreground (geometric augmentations only move it)."""
    root = str(tmp_path)
    fake_layouts.write_deepglobe(root)
    fake_layouts.write_isic(root)
    fake_layouts.write_chestxray(root, size=(30, 26))
    fss_classes = fake_layouts.fss_classes('test')[:3]
    fake_layouts.write_fss1000(root, fss_classes)
    (tmp_path / 'three.txt').write_text(''.join(f'{name}\n' for name in fss_classes))
    pipeline = [dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
                dict(type='FewShotResize', scale=(32, 32))]
    extra = dict(ann_file='three.txt') if dataset_type == 'FSS1000Dataset' else {}
    dataset = DATASETS.build(dict(type=dataset_type, data_root=root, shot=2, num_episodes=3, pipeline=pipeline,
                                  adapt_queries=4, **extra))
    for i in range(3):
        sample = dataset[i]['data_samples']
        assert sample.adapt_imgs.shape == (4, 3, 32, 32) and sample.adapt_masks.shape == (4, 32, 32)
        for mask, j in zip(sample.adapt_masks, sample.metainfo['pseudo_query_sources']):
            assert bool(mask.any()) == bool(sample.support_masks[j].any())
    grid = 'RandomGridShuffle' in repr(dataset.pseudo_query_pipeline)
    assert grid == (dataset_type == 'DeepglobeDataset')


def test_sweep_tool_runs_the_grid_beside_the_no_step_control(root, setup, tmp_path):
    """tools/analysis_tools/episode_adaptation_sweep.py: the no-step run first, then every combination of the grids,
    each with its gain over the no-step run and its cost as a ratio to it."""
    from tests.helpers.scripts import load_script
    script = load_script('tools/analysis_tools/episode_adaptation_sweep.py')
    assert script.parse_grid(['steps=1,2', 'optimizer.lr=0.05', "params=['backbone.layer3']"]) == [
        dict(steps=1, **{'optimizer.lr': 0.05}, params=['backbone.layer3']),
        dict(steps=2, **{'optimizer.lr': 0.05}, params=['backbone.layer3'])]
    assert script.parse_grid(['recipe=full'])[0] == dict(recipe='full')
    proc = run(root, 'tools/analysis_tools/episode_adaptation_sweep.py', setup['configs'][1], setup['ckpt'],
               '--grid', 'steps=1', 'optimizer.lr=0.05', '--grid', 'recipe=full', 'steps=1',
               '--work-dir', str(tmp_path), env=dict(OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / 'sweep.json') as f:
        rows = json.load(f)['rows']
    assert [r['setting'] for r in rows] == [dict(steps=0), {'steps': 1, 'optimizer.lr': 0.05},
                                            dict(recipe='full', steps=1)]
    assert rows[0]['gain'] == dict(mIoU=0.0, FBIoU=0.0) and rows[0]['cost_ratio'] == 1.0
    assert rows[1]['episode_adaptation']['optimizer']['lr'] == 0.05
    full = EPISODE_RECIPES['full']  # the child config's overrides (2 queries per step, lr 0.05) stay
    assert rows[2]['episode_adaptation'] == dict(full, steps=1, optimizer=dict(full['optimizer'], lr=0.05))
    for row in rows[1:]:
        assert row['gain']['mIoU'] == pytest.approx(row['mIoU'] - rows[0]['mIoU'])
        assert row['cost_ratio'] == pytest.approx(row['seconds_per_episode'] / rows[0]['seconds_per_episode'])
