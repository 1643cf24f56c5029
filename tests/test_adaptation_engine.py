"""The per-episode adaptation engine: frozen prefix computed once, two engines, recipes, views.

Exact savings first: cutting the feature extractor at the first adapted parameter, and
computing the cut-off part once per image and episode, must give the logits of the
uncached route (<= 1e-5) on the official R-50, the demo R-18 and DINOv2 ViT-S/14, with
``params='trainable'`` and a name-prefix choice. The 'loop' and 'vmap' engines compute the
same function (within 1e-5 relative), and a learning-rate-0 adaptation is the no-step route
(the demo's control).
"""
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from ifa_mmseg.models.adaptation import (ENGINES, EPISODE_RECIPES, NORM_LAYERS, EpisodeAdapter, FeatureSplit,
                                         episode_adaptation_settings, feature_split)
from ifa_mmseg.models.backbones import ifa_resnet
from ifa_mmseg.models.utils import memory
from ifa_mmseg.models.utils.memory import keep_memory_format

from tests.helpers.models import build_r50

TOL = 1e-5
SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)


def demo_r18(root: str):
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(f'{root}/configs/demo/deepglobe.py').model).eval()


def dinov2_vits14(root: str):
    """mmpretrain's DINOv2 ViT-S/14 (12 blocks, 384 channels) at 56 px, random weights, blocks 11-12 trainable.

    Layer scale 1 instead of the release's initial 1e-5, so that random blocks matter as trained ones do."""
    cfg = Config.fromfile(f'{root}/configs/ifa/deepglobe_1shot_dinov2_vits14.py')
    cfg.merge_from_dict({'model.backbone.init_cfg': None, 'model.backbone.img_size': 56,
                         'model.backbone.layer_scale_init_value': 1.0})
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


MODELS_AND_PARAMS = [
    ('r50', build_r50, 'trainable', 64),
    ('r50', build_r50, ['backbone.layer3'], 64),
    ('r18', demo_r18, 'trainable', 48),
    ('r18', demo_r18, ['backbone.layer3.1'], 48),
    ('vits14', dinov2_vits14, 'trainable', 56),
    ('vits14', dinov2_vits14, ['backbone.layers.11'], 56),
]


def episodes(size: int, b: int = 2, k: int = 1, v: int = 4, seed: int = 0):
    """(queries, supports, support masks, pseudo-queries, their masks) of ``b`` random episodes."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, size, size, generator=g), torch.randn(b, k, 3, size, size, generator=g),
            (torch.rand(b, k, size, size, generator=g) > 0.6).long(), torch.randn(b, v, 3, size, size, generator=g),
            (torch.rand(b, v, size, size, generator=g) > 0.6).long())


def predict(model, adapter: EpisodeAdapter, data) -> torch.Tensor:
    """[B, 2, H, W] prediction logits after per-episode adaptation."""
    images, supports, masks, queries, query_masks = data
    feat_q, feat_s = adapter.features(model, images, supports, masks, queries, query_masks)
    with torch.no_grad():
        logits = model.decode_head(feat_q, feat_s, masks.transpose(0, 1).flatten(0, 1).float(),
                                   size=images.shape[-2:], training=False)
    return logits['q_refine']


@pytest.mark.parametrize('name,build,params,size', MODELS_AND_PARAMS, ids=lambda x: str(x))
def test_cached_prefix_gives_the_uncached_logits(root, monkeypatch, name, build, params, size):
    model = build(root).eval()
    adapter = EpisodeAdapter(steps=2, queries_per_step=2, optimizer=SGD, params=params, views=3)
    data = episodes(size, v=3)
    split = FeatureSplit(model, adapter.parameter_names(model))
    cached = predict(model, adapter, data)
    monkeypatch.setattr(feature_split, 'backbone_blocks', lambda backbone: None)  # nothing is cut
    assert FeatureSplit(model, adapter.parameter_names(model)).cached_blocks == 0
    uncached = predict(model, adapter, data)
    assert (cached - uncached).abs().max() <= TOL
    with torch.no_grad():
        plain = model.forward_episode(data[0], data[1], data[2])['q_refine']
    assert (cached - plain).abs().max() > 1e-3  # the two steps did move the prediction
    # what is cut: everything below the first adapted parameter (the demo R-18 adapts its stem by default)
    expected = {('r50', 'trainable'): 1 + 3, ('r50', 'backbone.layer3'): 1 + 3 + 4, ('r18', 'trainable'): 0,
                ('r18', 'backbone.layer3.1'): 1 + 2 + 2 + 1, ('vits14', 'trainable'): 1 + 10,
                ('vits14', 'backbone.layers.11'): 1 + 11}
    assert split.cached_blocks == expected[name, params if isinstance(params, str) else params[0]]


@pytest.mark.parametrize('build,size', [(build_r50, 64), (demo_r18, 48), (dinov2_vits14, 56)])
def test_prefix_then_suffix_is_extract_feat_at_every_cut(root, build, size):
    model = build(root).eval()
    names = [n for n, _ in model.named_parameters()]
    images = torch.randn(3, 3, size, size)
    with torch.no_grad():
        whole = model.extract_feat(images)
        for i, block in enumerate(feature_split.backbone_blocks(model.backbone)):
            first = next(n for n in names if feature_split.owns([f'backbone.{p}' for p in block.owns], n))
            split = FeatureSplit(model, [first])
            assert split.cached_blocks == i
            assert (split(split.prefix(images)) - whole).abs().max() <= TOL, i


@pytest.mark.parametrize('build,size', [(demo_r18, 48), (build_r50, 64)])
def test_engines_compute_the_same_function(root, build, size):
    """Without a cut (the demo R-18 adapts its stem) and with one (the R-50's blocks under vmap), within 1e-5
    relative: the engines' kernels round differently (oneDNN against PyTorch's own) and 3 steps amplify it."""
    model = build(root).eval()
    data = episodes(size, b=3, v=6)
    adapters = [EpisodeAdapter(steps=3, queries_per_step=2, optimizer=SGD, params='trainable', engine=engine)
                for engine in ('loop', 'vmap')]
    loop, vmap = (predict(model, adapter, data) for adapter in adapters)
    torch.testing.assert_close(vmap, loop, rtol=TOL, atol=TOL)


def test_ifa_resnet_keeps_the_memory_format_only_under_the_vmap_engine(root, monkeypatch):
    """IFAResNet converts its input to channels-last, which vmap cannot do: the 'vmap' engine runs the whole
    (uncut) backbone within keep_memory_format, the loop engine without; both give the same logits."""
    model = build_r50(root).eval()
    with torch.no_grad():
        assert model.backbone(torch.randn(2, 3, 64, 64))[0].is_contiguous(memory_format=torch.channels_last)
        with keep_memory_format():
            assert model.backbone(torch.randn(2, 3, 64, 64))[0].is_contiguous()
    converted = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        out = memory.channels_last(x)
        converted.append(out is not x)
        return out

    monkeypatch.setattr(ifa_resnet, 'channels_last', spy)
    monkeypatch.setattr(feature_split, 'backbone_blocks', lambda backbone: None)  # nothing is cut
    data = episodes(64, b=2, v=2)
    logits = {}
    for engine, converts in (('loop', True), ('vmap', False)):
        converted.clear()
        adapter = EpisodeAdapter(steps=1, queries_per_step=2, optimizer=SGD, params='trainable', engine=engine)
        logits[engine] = predict(model, adapter, data)
        assert converted and set(converted) == {converts}, engine
    torch.testing.assert_close(logits['vmap'], logits['loop'], rtol=TOL, atol=TOL)


@pytest.mark.parametrize('recipe', sorted(EPISODE_RECIPES))
def test_learning_rate_zero_is_the_no_step_route(root, recipe):
    """The demo's per-episode control runs with no step; adapting at learning rate 0 gives the same logits."""
    model = demo_r18(root)
    settings = dict(recipe=recipe, steps=2, views=4, optimizer=dict(lr=0.0))
    data = episodes(48, v=4)
    lr0 = predict(model, EpisodeAdapter.from_settings(settings), data)
    no_step = EpisodeAdapter.from_settings(dict(settings, steps=0))
    assert no_step.num_queries == 0
    assert torch.equal(predict(model, no_step, data[:3] + (None, None)), lr0)
    with torch.no_grad():
        plain = model.forward_episode(data[0], data[1], data[2])['q_refine']
    assert (lr0 - plain).abs().max() <= TOL


def test_views_are_a_fixed_bank_cycled_by_the_steps():
    adapter = EpisodeAdapter(steps=5, queries_per_step=2, optimizer=SGD, params='trainable', views=3)
    assert adapter.num_queries == 3
    assert [adapter.view_indices(s) for s in range(5)] == [[0, 1], [2, 0], [1, 2], [0, 1], [2, 0]]
    fresh = EpisodeAdapter(steps=5, queries_per_step=2, optimizer=SGD, params='trainable')
    assert fresh.num_queries == 10 and fresh.view_indices(4) == [8, 9]
    with pytest.raises(ValueError, match='views must be None or a whole number >= queries_per_step'):
        EpisodeAdapter(steps=5, queries_per_step=2, optimizer=SGD, params='trainable', views=1)
    with pytest.raises(ValueError, match="engine must be one of"):
        EpisodeAdapter(steps=5, queries_per_step=2, optimizer=SGD, params='trainable', engine='threads')


def test_recipes_and_overrides():
    light = episode_adaptation_settings(dict(recipe='light'))
    assert light == EPISODE_RECIPES['light'] and light is not EPISODE_RECIPES['light']
    over = episode_adaptation_settings(dict(recipe='full', steps=3, optimizer=dict(lr=0.1)))
    assert over['steps'] == 3 and over['optimizer'] == dict(EPISODE_RECIPES['full']['optimizer'], lr=0.1)
    adam = episode_adaptation_settings(dict(recipe='full', optimizer=dict(type='Adam', lr=0.1)))
    assert adam['optimizer'] == dict(type='Adam', lr=0.1)  # another optimizer takes none of SGD's arguments
    with pytest.raises(ValueError, match=r"recipe must be one of \['full', 'light'\] \(episode_adaptation.recipe\)"):
        episode_adaptation_settings(dict(steps=3))


def test_which_parameters_adapt(root):
    r18, r50, vit = demo_r18(root), build_r50(root), dinov2_vits14(root)
    last = EpisodeAdapter(steps=1, queries_per_step=1, optimizer=SGD, params='last_block')
    assert last.parameter_names(r18) == ['backbone.layer3.1.conv1.weight', 'backbone.layer3.1.conv2.weight']
    assert {n.rsplit('.', 2)[0] for n in last.parameter_names(r50)} == {'backbone.layer3.5'}
    # the last transformer layer without its LayerNorms (nor the final norm) unless adapt_norms
    assert {n.rsplit('.', 1)[0] for n in last.parameter_names(vit)} == {
        'backbone.layers.11.attn.qkv', 'backbone.layers.11.attn.proj', 'backbone.layers.11.ffn.layers.0.0',
        'backbone.layers.11.ffn.layers.1', 'backbone.layers.11.ffn.gamma2', 'backbone.layers.11.attn.gamma1'}
    with_norms = EpisodeAdapter(steps=1, queries_per_step=1, optimizer=SGD, params='last_block', adapt_norms=True)
    assert set(with_norms.parameter_names(vit)) - set(last.parameter_names(vit)) == {
        'backbone.layers.11.ln1.weight', 'backbone.layers.11.ln1.bias', 'backbone.layers.11.ln2.weight',
        'backbone.layers.11.ln2.bias', 'backbone.ln1.weight', 'backbone.ln1.bias'}
    # name prefixes take no normalisation layer's parameters either: BatchNorm on the R-50, LayerNorm on DINOv2
    for model, prefix in ((r50, 'backbone.layer3'), (vit, 'backbone.layers.11')):
        names = EpisodeAdapter(steps=1, queries_per_step=1, optimizer=SGD, params=[prefix]).parameter_names(model)
        norms = {f'{m}.{n}' for m, module in model.named_modules() if isinstance(module, NORM_LAYERS)
                 for n, _ in module.named_parameters(recurse=False) if m.startswith(prefix)}
        assert names and norms and not norms & set(names)
        assert set(EpisodeAdapter(steps=1, queries_per_step=1, optimizer=SGD, params=[prefix],
                                  adapt_norms=True).parameter_names(model)) == set(names) | norms
    assert len({type(m) for m in r50.modules() if isinstance(m, NORM_LAYERS)} - {torch.nn.BatchNorm2d}) == 0
    with pytest.raises(ValueError, match=r"no parameter of the model is named \['backbone.layer3.0.bn1'\] .*"
                                         r"normalisation layers aside \(adapt_norms=True takes them\)"):
        EpisodeAdapter(steps=1, queries_per_step=1, optimizer=SGD,
                       params=['backbone.layer3.0.bn1']).parameter_names(r18)


@pytest.mark.parametrize('engine', ENGINES)
def test_adapted_norms_change_the_prediction_per_episode(root, engine):
    """adapt_norms=True: BatchNorm's affine parameters adapt on either engine, alone = in a batch."""
    model = demo_r18(root)
    adapter = EpisodeAdapter(steps=2, queries_per_step=1, optimizer=dict(type='SGD', lr=0.5),
                             params=['backbone.layer3.1.bn2'], adapt_norms=True, engine=engine)
    assert adapter.parameter_names(model) == ['backbone.layer3.1.bn2.weight', 'backbone.layer3.1.bn2.bias']
    control = EpisodeAdapter(steps=2, queries_per_step=1, optimizer=dict(type='SGD', lr=0.0),
                             params=['backbone.layer3.1.bn2'], adapt_norms=True, engine=engine)
    data = episodes(49, b=2, v=2)
    batch, plain = predict(model, adapter, data), predict(model, control, data)
    assert (batch - plain).abs().max() > 1e-3
    assert (predict(model, adapter, tuple(x[1:2] for x in data))[0] - batch[1]).abs().max() <= 1e-5


def test_loop_engine_workers_give_the_single_threaded_result(root):
    """With T > 1 intra-op threads the loop engine runs episodes in T single-threaded workers: each episode's
    logits equal its logits alone and with one thread, bit for bit."""
    model = demo_r18(root)
    adapter = EpisodeAdapter(steps=2, queries_per_step=1, optimizer=SGD, params='trainable')
    data = episodes(48, b=3, v=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = predict(model, adapter, data)
        torch.set_num_threads(2)
        workers = predict(model, adapter, data)
        assert torch.get_num_threads() == 2  # restored after the workers
        alone = predict(model, adapter, tuple(x[1:2] for x in data))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(workers, single)
    assert torch.equal(alone[0], workers[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('engine', ['loop', 'vmap'])
def test_on_cuda_an_episode_alone_equals_it_in_a_batch(root, engine):
    """The GPU check of the 'vmap' engine (untested on GPUs until this test has run on one:
    docs/en/user_guides/per_episode_adaptation.md)."""
    model = demo_r18(root).cuda()
    adapter = EpisodeAdapter(steps=3, queries_per_step=2, optimizer=SGD, params='trainable', engine=engine)
    data = tuple(x.cuda() for x in episodes(48, b=4, v=6))
    batch = predict(model, adapter, data)
    for i in range(4):
        assert (predict(model, adapter, tuple(x[i:i + 1] for x in data))[0] - batch[i]).abs().max() <= TOL, i
    assert (predict(model, adapter, tuple(x.flip(0) for x in data)).flip(0) - batch).abs().max() <= TOL
