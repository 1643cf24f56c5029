"""Per-episode adaptation of HSNet and PATNet: the head adapts per episode, the backbone and the model stay."""
import copy
import pickle

import pytest
import torch
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

from ifa_mmseg.datasets import make_synthetic_benchmark
from ifa_mmseg.models.adaptation import NORM_LAYERS

from .helpers.episodes import packed_episodes
from .helpers.hypercorr_recipe import hypercorr_cfg
from .helpers.launch import logged_metrics, run

TOL = 1e-5
SIZE = 48
ADAPT = dict(recipe='light', optimizer=dict(lr=0.05))  # a large step, so that 2 steps visibly move the prediction
CHANNELS = (8, 16, 16)  # a small learner: its forward and backward are what each step costs


def small_model(root: str, name: str) -> torch.nn.Module:
    """``name``'s base config (R-50 backbone) with a small learner, randomly initialised (seeded)."""
    cfg = hypercorr_cfg(root, name)
    cfg.decode_head.channels = CHANNELS
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


@pytest.fixture(scope='module', params=['hsnet', 'patnet'])
def model(request, root):
    return small_model(root, request.param)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the loop engine computes each episode (the independence test takes the tests' 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def episodes(model, batch: int, shot: int, views: int, seed: int = 0) -> dict:
    """Preprocessed episodes whose samples carry ``views`` pseudo-queries (flipped supports, cycled)."""
    data = packed_episodes(batch, shot, SIZE, seed)
    for sample in data['data_samples']:
        rows = [i % shot for i in range(views)]
        sample.adapt_imgs = sample.support_imgs[rows].flip(-1)
        sample.adapt_masks = sample.support_masks[rows].flip(-1)
    return model.data_preprocessor(data, False)


def logits_of(model, data: dict) -> torch.Tensor:
    """[B, 2, H, W] ``seg_logits`` of :meth:`predict`."""
    with torch.no_grad():
        return torch.stack([s.seg_logits.data for s in model.predict(**copy.deepcopy(data))])


def without_views(data: dict) -> dict:
    """``data`` without pseudo-queries (what a test dataset gives without per-episode adaptation)."""
    data = copy.deepcopy(data)
    for sample in data['data_samples']:
        del sample.adapt_imgs, sample.adapt_masks
    return data


def plain_logits(model, data: dict) -> torch.Tensor:
    model.set_episode_adaptation(None)
    return logits_of(model, without_views(data))


def adapting(model, **settings):
    model.set_episode_adaptation(dict(ADAPT, **settings))
    return model


def test_no_step_or_lr_zero_is_the_plain_prediction(model):
    """Exactly for an episode alone (the same image batches and kernels); within 1e-5 for a batch."""
    one = episodes(model, 1, 1, 2)
    assert torch.equal(logits_of(adapting(model, steps=0), without_views(one)), plain_logits(model, one))
    assert (logits_of(adapting(model, optimizer=dict(lr=0.0)), one) - plain_logits(model, one)).abs().max() <= TOL
    data = episodes(model, 2, 2, 2)
    assert (logits_of(adapting(model, steps=0), without_views(data)) - plain_logits(model, data)).abs().max() <= TOL


@pytest.mark.parametrize('shot', [1, 2])
def test_steps_change_the_prediction_and_not_the_model(model, shot):
    data = episodes(model, 2, shot, 2, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = logits_of(adapting(model), data)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert (adapted - plain_logits(model, data)).abs().max() > 1e-3


@pytest.mark.parametrize('shot', [1, 2])
def test_episode_is_independent_of_the_others_in_its_batch(model, shot):
    """Alone, in a batch of 3, in reverse order: the same logits (<= 1e-5), on 2 threads (2 workers)."""
    torch.set_num_threads(2)
    data = episodes(model, 3, shot, 1, seed=2)
    batch = logits_of(adapting(model, steps=1), data)
    for i in range(3):
        alone = dict(inputs=data['inputs'][i:i + 1], data_samples=data['data_samples'][i:i + 1])
        assert (logits_of(model, alone)[0] - batch[i]).abs().max() <= TOL, i
    reverse = dict(inputs=data['inputs'].flip(0), data_samples=data['data_samples'][::-1])
    assert (logits_of(model, reverse).flip(0) - batch).abs().max() <= TOL


def test_the_head_adapts_and_the_backbone_does_not(model):
    norms = {f'{m}.{n}' for m, module in model.named_modules() if isinstance(module, NORM_LAYERS)
             for n, _ in module.named_parameters(recurse=False)}
    head = [n for n, p in model.named_parameters() if p.requires_grad]
    assert head and all(n.startswith('decode_head.') for n in head)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert adapting(model).episode_adapter.parameter_names(model) == [n for n in head if n not in norms]
    assert adapting(model, adapt_norms=True).episode_adapter.parameter_names(model) == head
    if type(model.decode_head).__name__ == 'PATNetHead':
        assert {'decode_head.anchors.0', 'decode_head.anchors.2'} <= set(head)
    with pytest.raises(ValueError, match="runs the 'loop' engine only"):
        adapting(model, engine='vmap')
    with pytest.raises(ValueError, match='adapts decode_head parameters only'):
        adapting(model, params=['backbone.layer4'])
    model.set_episode_adaptation(None)


def test_episode_adaptation_needs_the_pseudo_queries(model):
    data = without_views(episodes(model, 1, 1, 2))
    with pytest.raises(ValueError, match="needs every episode's pseudo-queries"):
        logits_of(adapting(model), data)
    model.set_episode_adaptation(None)
    with pytest.raises(ValueError, match='carry pseudo-queries'):
        logits_of(model, episodes(model, 1, 1, 2))


CHILD = """
_base_ = ['{root}/configs/_base_/models/hsnet_r50.py', '{root}/configs/_base_/datasets/deepglobe.py',
          '{root}/configs/_base_/default_runtime.py']
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.logits_dump'], allow_failed_imports=False)
model = dict(backbone=dict(init_cfg=None), decode_head=dict(channels={channels}))
load_from = '{ckpt}'
data_root = '{data}'
test_episodes = 4
test_seeds = (0, )
metrics = ('standard', )
test_dataloader = dict(batch_size=2, dataset=dict(data_root='{data}', pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=({size}, {size}))]))
test_evaluator = [dict(type='FewShotIoUMetric'), dict(type='EpisodeLogitsDump', out_file='{out}')]
"""


def test_tools_test_adapts_hsnet_per_episode(root, tmp_path):
    """tools/test.py with adaptation_labels=episode: other logits than the plain run; with 0 steps its logits."""
    data = str(tmp_path / 'data')
    make_synthetic_benchmark(data, seed=3, size=SIZE, images_per_class=4, num_tiles=18)
    ckpt = str(tmp_path / 'random.pth')
    save_checkpoint(dict(state_dict=small_model(root, 'hsnet').state_dict(), meta=dict()), ckpt)
    options = dict(plain=(), episode=('adaptation_labels=episode', 'episode_adaptation.optimizer.lr=0.05'),
                   no_step=('adaptation_labels=episode', 'episode_adaptation.steps=0'))
    dumps = {}
    for name, extra in options.items():
        out = str(tmp_path / f'{name}.pkl')
        config = tmp_path / f'{name}.py'
        config.write_text(CHILD.format(root=root, ckpt=ckpt, data=data, size=SIZE, channels=CHANNELS, out=out))
        args = [str(config), ckpt, '--work-dir', str(tmp_path / name)] + (['--cfg-options', *extra] if extra else [])
        proc = run(root, 'tools/test.py', *args, env=dict(OMP_NUM_THREADS='1'))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'mIoU' in logged_metrics(str(tmp_path / name))
        with open(out, 'rb') as f:
            dumps[name] = pickle.load(f)
    assert sorted(dumps['plain']) == sorted(dumps['episode']) == sorted(dumps['no_step']) and dumps['plain']
    assert max(float((dumps['no_step'][k] - dumps['plain'][k]).abs().max()) for k in dumps['plain']) <= TOL
    assert max(float((dumps['episode'][k] - dumps['plain'][k]).abs().max()) for k in dumps['plain']) > 1e-3
