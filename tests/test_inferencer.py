"""FewShotInferencer and tools/infer.py on generated scenes.

No trained model is available, so the backbone is a randomly initialised IFAResNet-50
(fixed seed). Its features still tell colours apart, so a support mask on the red object
must find the red object in the queries, and a mask on the blue object must not.
"""
import os
import os.path as osp
import re
import subprocess
import sys
from typing import List, Tuple

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from PIL import Image

from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.runner import load_checkpoint
from mmseg.apis import init_model
from mmseg.registry import DATASETS, MODELS

from ifa_mmseg.apis import FewShotInferencer
from ifa_mmseg.apis.inference import list_queries, output_stems
from ifa_mmseg.datasets import fewshot_collate
from ifa_mmseg.datasets.pseudo_query import item_seed
from ifa_mmseg.datasets.transforms import UnreadableFileError
from ifa_mmseg.datasets.transforms.loading import EmptyMaskError
from ifa_mmseg.models import EpisodeAdapter, IFAResNet
from ifa_mmseg.utils import NonFiniteError
from tests.helpers.fake_layouts import write_deepglobe
from tests.helpers.scripts import load_script

CONFIG = 'configs/ifa/deepglobe_1shot.py'
SIZE = 64  # model input size instead of 400, to keep the tests fast
CFG_OPTIONS = {'test_dataloader.dataset.pipeline.2.scale': (SIZE, SIZE)}
RED, BLUE = (220, 40, 40), (40, 60, 220)
QUERY_SIZES = ((70, 64), (56, 80), (64, 64))  # (h, w): unlike each other and the model size
RIGHT_IOU, WRONG_IOU = 0.4, 0.1  # measured: 0.49-0.62 and 0.00-0.02
# adaptation runs backward passes: the CPU demo's ResNet-18 (every convolution adapts) keeps them fast
DEMO_CONFIG = 'configs/demo/deepglobe.py'
ADAPT_LR = {'episode_adaptation.optimizer.lr': 0.05}  # large enough for 2 steps to move a random model


def scene(seed: int, h: int = 80, w: int = 96) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red and a blue disk on grey noise: uint8 RGB [h, w, 3] and the red and blue masks (bool)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy = rng.uniform(0.35, 0.65) * h
    r = rng.uniform(0.25, 0.3) * min(h, w)
    red_x, blue_x = (0.27 * w, 0.73 * w) if rng.random() < 0.5 else (0.73 * w, 0.27 * w)
    red = (yy - cy) ** 2 + (xx - red_x) ** 2 <= r ** 2
    blue = (yy - (h - cy)) ** 2 + (xx - blue_x) ** 2 <= r ** 2
    img = rng.normal(128, 25, (h, w, 1)).repeat(3, 2)
    img = np.where(red[..., None], RED, np.where(blue[..., None], BLUE, img)) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), red, blue


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    return float((pred & gt).sum() / (pred | gt).sum())


def save(array: np.ndarray, path) -> str:
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        backbone = IFAResNet(depth=50).state_dict()
    path = str(tmp_path_factory.mktemp('ckpt') / 'random_r50.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in backbone.items()}), path)
    return path


@pytest.fixture(scope='module')
def inferencer(root, checkpoint) -> FewShotInferencer:
    return FewShotInferencer(osp.join(root, CONFIG), checkpoint, 'cpu', cfg_options=CFG_OPTIONS)


@pytest.fixture(scope='module')
def demo_checkpoint(root, tmp_path_factory) -> str:
    cfg = Config.fromfile(osp.join(root, DEMO_CONFIG))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    path = str(tmp_path_factory.mktemp('ckpt') / 'random_r18.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def adapting(root, demo_checkpoint) -> FewShotInferencer:
    return FewShotInferencer(osp.join(root, DEMO_CONFIG), demo_checkpoint, 'cpu',
                             cfg_options={**CFG_OPTIONS, **ADAPT_LR})


@pytest.fixture(scope='module')
def episode():
    """Two supports (images, red masks, blue masks) and three queries (images, red masks)."""
    supports = [scene(seed) for seed in (0, 1)]
    queries = [scene(10 + i, h, w) for i, (h, w) in enumerate(QUERY_SIZES)]
    return ([s[0] for s in supports], [s[1] for s in supports], [s[2] for s in supports],
            [q[0] for q in queries], [q[1] for q in queries])


def test_same_class_support_finds_the_object(inferencer, episode):
    imgs, red, blue, queries, gts = episode
    right = inferencer(queries, support_images=imgs, support_masks=red, batch_size=2, return_prob=True)['predictions']
    wrong = inferencer(queries, imgs, blue, batch_size=2)['predictions']
    right_iou = [iou(r['mask'], gt) for r, gt in zip(right, gts)]
    wrong_iou = [iou(r['mask'], gt) for r, gt in zip(wrong, gts)]
    print('IoU with red supports', np.round(right_iou, 3), 'with blue supports', np.round(wrong_iou, 3))
    assert min(right_iou) > RIGHT_IOU and max(wrong_iou) < WRONG_IOU
    for r, q in zip(right, queries):
        assert r['mask'].shape == r['prob'].shape == q.shape[:2]  # each query's own size
        assert r['mask'].dtype == np.uint8 and set(np.unique(r['mask'])) <= {0, 1}
        assert r['prob'].dtype == np.float32 and 0 <= r['prob'].min() and r['prob'].max() <= 1
        clear = np.abs(r['prob'] - 0.5) > 1e-4
        assert np.array_equal(r['mask'][clear], (r['prob'][clear] > 0.5).astype(np.uint8))


def test_supports_encoded_once_and_queries_batched(inferencer, episode):
    imgs, red, _, queries, _ = episode
    batches: List[int] = []
    backbone = inferencer.model.backbone
    forward = backbone.forward
    backbone.forward = lambda x: batches.append(x.shape[0]) or forward(x)
    try:
        batched = inferencer(queries, imgs, red, batch_size=2, return_prob=True)['predictions']
    finally:
        del backbone.forward
    assert batches == [2, 2, 1]  # the K=2 supports once, then the queries in batches of 2
    supports = inferencer.load_supports(imgs, red)
    single = list(inferencer.predict(queries, supports, batch_size=1, return_prob=True))
    for a, b in zip(batched, single):
        assert np.allclose(a['prob'], b['prob'], atol=1e-5)


def test_same_pixels_and_logits_as_the_test_pipeline(inferencer, episode, tmp_path):
    """Files through the dataset transforms + IFASegmentor.predict give the inferencer's probabilities."""
    imgs, red, _, queries, _ = episode
    s_paths = [save(img, tmp_path / f's{k}.jpg') for k, img in enumerate(imgs)]
    m_paths = [save(m.astype(np.uint8) * 255, tmp_path / f's{k}_mask.png') for k, m in enumerate(red)]
    q_path = save(queries[0], tmp_path / 'q.png')
    image = Compose([dict(type='LoadRGBImageFromFile'), dict(type='FewShotResize', scale=(SIZE, SIZE))])
    support = Compose([dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
                       dict(type='FewShotResize', scale=(SIZE, SIZE))])
    pack = Compose([dict(type='PackFewShotInputs')])
    packed = pack(dict(query=image(dict(img_path=q_path)),
                       supports=[support(dict(img_path=i, seg_map_path=m)) for i, m in zip(s_paths, m_paths)]))
    model = inferencer.model
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]))
        expected = model.predict(**data)[0].seg_logits.data.softmax(0)[1].numpy()
    prob = inferencer(q_path, s_paths, m_paths, return_prob=True)['predictions'][0]['prob']
    assert prob.shape == queries[0].shape[:2]
    assert np.allclose(prob, expected, atol=1e-5)


def test_masks_decoded_by_the_datasets_rule(inferencer, episode, tmp_path):
    """0/1, 16-bit, palette and grey RGB masks give the 0/255 mask's prediction; a dark colour mask is refused."""
    imgs, red, _, queries, _ = episode
    grey = red[0].astype(np.uint8) * 255
    expected = inferencer(queries[0], imgs[:1], [grey])['predictions'][0]['mask']
    assert expected.any()
    palette = Image.frombytes('P', grey.shape[::-1], red[0].astype(np.uint8).tobytes())
    palette.putpalette([0, 0, 0, 128, 0, 0])  # index 1, the foreground, is grey 38
    palette.save(tmp_path / 'palette.png')
    masks = [save(np.repeat(grey[..., None], 3, 2), tmp_path / 'grey_rgb.png'),
             save(red[0].astype(np.uint8), tmp_path / 'zero_one.png'),
             save(red[0].astype(np.uint16), tmp_path / 'zero_one_16.png'),
             str(tmp_path / 'palette.png'), red[0].astype(np.int64)]
    for mask in masks:
        assert np.array_equal(inferencer(queries[0], imgs[:1], [mask])['predictions'][0]['mask'], expected), mask
    colour = np.zeros((*grey.shape, 3), np.uint8)
    colour[..., 0] = grey  # a red-on-black mask: grey 76, under the threshold
    path = save(colour, tmp_path / 'red_mask.png')
    with pytest.raises(EmptyMaskError, match=re.escape(f'{path}: the mask (PIL mode RGB, values (0, 0, 0), '
                                                       '(255, 0, 0) (grey levels 0, 76)) has non-zero pixels')):
        inferencer.load_supports(imgs[:1], [path])


def test_bad_inputs_name_the_file(inferencer, episode, tmp_path):
    imgs, red, _, queries, _ = episode
    img_path = save(imgs[0], tmp_path / 'support.png')
    small = save(red[0][:40].astype(np.uint8) * 255, tmp_path / 'small_mask.png')
    with pytest.raises(ValueError, match=re.escape(f'{small}: the mask is 96x40 (w x h) but its image {img_path} '
                                                   'is 96x80')):
        inferencer.load_supports([img_path], [small])
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not an image')
    with pytest.raises(UnreadableFileError, match=re.escape(f'cannot read {broken}')):
        inferencer.load_supports([str(broken)], [red[0]])
    with pytest.raises(ValueError, match='2 images .* and 1 masks'):
        inferencer.load_supports(imgs, red[:1])
    with pytest.raises(ValueError, match='support image #0: an image array must be uint8 RGB'):
        inferencer.load_supports([imgs[0].astype(np.float32)], red[:1])
    supports = inferencer.load_supports(imgs, red)
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(UnreadableFileError, match=re.escape(missing)):
        inferencer.predict([queries[0], missing], supports)  # checked before the first prediction


def test_empty_support_mask_warns_and_predicts(inferencer, episode):
    imgs, red, _, queries, _ = episode
    with pytest.warns(UserWarning, match='support mask #1: the support mask has no foreground'):
        result = inferencer(queries[0], imgs, [red[0], np.zeros_like(red[1])])['predictions']
    assert result[0]['mask'].shape == queries[0].shape[:2]


def test_support_set_without_foreground_is_refused(inferencer, episode, tmp_path):
    imgs, red, _, queries, _ = episode
    zero = save(np.zeros(red[1].shape, np.uint8), tmp_path / 'zero.png')
    with pytest.raises(ValueError, match=re.escape(f'no support mask has a foreground pixel at the model input size '
                                                   f'(support mask #0, {zero})')):
        inferencer(queries[0], imgs, [np.zeros_like(red[0]), zero])


def test_is_an_mmengine_inferencer_writing_vis_and_pred(inferencer, episode, tmp_path):
    """out_dir: pictures in out_dir/vis, 0/255 masks at each query's size in out_dir/pred (MMSegInferencer's layout)."""
    imgs, red, _, queries, _ = episode
    assert isinstance(inferencer, BaseInferencer)
    q_paths = [save(q, tmp_path / f'q{i}.png') for i, q in enumerate(queries)]
    out = inferencer(q_paths[:2] + [queries[2]], imgs, red, batch_size=2, out_dir=str(tmp_path / 'out'),
                     return_vis=True, opacity=0.7, title='t')
    stems = ['q0', 'q1', 'query_00002']
    assert sorted(os.listdir(tmp_path / 'out')) == ['pred', 'vis']
    assert sorted(os.listdir(tmp_path / 'out' / 'pred')) == sorted(os.listdir(tmp_path / 'out' / 'vis')) == \
        sorted(f'{s}.png' for s in stems)
    for stem, q, result, vis in zip(stems, queries, out['predictions'], out['visualization']):
        mask = np.asarray(Image.open(tmp_path / 'out' / 'pred' / f'{stem}.png'))
        assert mask.shape == q.shape[:2] and np.array_equal(mask, result['mask'] * 255)
        assert np.array_equal(np.asarray(Image.open(tmp_path / 'out' / 'vis' / f'{stem}.png')), vis)
        assert vis.shape[0] > 256  # upscaled from the small query
    samples = inferencer(q_paths[0], imgs, red, return_datasamples=True)['predictions']
    assert samples[0].pred_sem_seg.shape == queries[0].shape[:2] and samples[0].support_imgs.shape[0] == 2
    assert samples[0].metainfo['support_ori_shapes'] == [(80, 96), (80, 96)]
    supports = inferencer.load_supports(imgs, red)
    again = inferencer(q_paths[0], supports=supports)['predictions'][0]['mask']
    assert np.array_equal(again, samples[0].pred_sem_seg.data[0].numpy())
    assert inferencer(q_paths[0], supports=supports)['visualization'] is None  # nothing drawn unless asked
    with pytest.raises(ValueError, match='would both be written as q0.png'):
        inferencer([q_paths[0], q_paths[0]], supports=supports, pred_out_dir=str(tmp_path / 'twice'))
    assert not (tmp_path / 'twice').exists()


def test_mmseg_init_model_builds_and_loads(root, episode, tmp_path):
    """mmseg.apis.init_model (pretrained=None, train_cfg=None) on a shipped config and a saved checkpoint."""
    cfg = Config.fromfile(osp.join(root, CONFIG))
    cfg.model.backbone.init_cfg = None
    with torch.random.fork_rng():
        torch.manual_seed(1)
        built = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('road', 'forest'))), state_dict=built.state_dict()), ckpt)
    model = init_model(osp.join(root, CONFIG), ckpt, device='cpu')
    assert not model.training and model.dataset_meta['classes'] == ('road', 'forest')
    for k, v in built.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    imgs, red, _, queries, gts = episode
    res = Compose([dict(type='FewShotResize', scale=(SIZE, SIZE))])

    def results(img, mask, name):
        return dict(img=img, img_path=name, seg_map_path=name, gt_seg_map=mask.astype(np.uint8),
                    seg_fields=['gt_seg_map'], ori_shape=img.shape[:2], img_shape=img.shape[:2])

    packed = Compose([dict(type='PackFewShotInputs')])(dict(
        query=res(results(queries[2], gts[2], 'q')),
        supports=[res(results(i, m, f's{k}')) for k, (i, m) in enumerate(zip(imgs, red))]))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]))
        pred = model(**data, mode='predict')[0]
        logits = model(**data, mode='tensor')
    assert pred.pred_sem_seg.shape == (SIZE, SIZE) and set(pred.pred_sem_seg.data.unique().tolist()) <= {0, 1}
    assert torch.allclose(model._prediction(logits)[0], pred.seg_logits.data, atol=1e-5)


def test_our_init_model_builds_the_model_of_the_resolved_config(root):
    """ifa_mmseg.apis.init_model is mmseg's on the resolved config: with adaptation_labels='episode' its model
    adapts per episode with the config's settings, which mmseg's, on the config as written, does not."""
    from ifa_mmseg.apis import init_model as ours
    options = {'adaptation_labels': 'episode', 'episode_adaptation.steps': 3}
    model = ours(osp.join(root, CONFIG), device='cpu', cfg_options=options)
    assert model.episode_adapter.steps == 3 and model.cfg.protocol.adaptation_labels == 'episode'
    assert init_model(osp.join(root, CONFIG), device='cpu', cfg_options=options).episode_adapter is None


def test_mmseg_init_model_loads_a_converted_official_checkpoint(root, tmp_path):
    """The converter's output has meta without dataset_meta: mmseg falls back to the head's num_classes (2)."""
    from ifa_mmseg.models import IFAResNet, convert_official
    from ifa_mmseg.utils.official_recipe import official_trained_state_dict
    backbone = convert_official(official_trained_state_dict(50), IFAResNet(depth=50).state_dict())
    ckpt = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in backbone.items()}, meta=dict(format='trained')), ckpt)
    model = init_model(osp.join(root, CONFIG), ckpt, device='cpu')
    assert model.decode_head.num_classes == 2 and len(model.dataset_meta['classes']) == 2
    assert torch.equal(model.backbone.layer3[0].conv1.weight, backbone['layer3.0.conv1.weight'])


# ---------------------------------------------------------------------- adaptation to the support set
def probs(out: dict) -> List[np.ndarray]:
    return [r['prob'] for r in out['predictions']]


def record_pseudo_queries(inferencer: FewShotInferencer, monkeypatch) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """The (images, masks) of every pseudo-query draw the inferencer makes, in order."""
    drawn = []
    draw = inferencer._pseudo_queries
    monkeypatch.setattr(inferencer, '_pseudo_queries', lambda *args: drawn.append(draw(*args)) or drawn[-1])
    return drawn


def test_no_adaptation_step_is_no_adaptation(adapting, episode):
    imgs, red, _, queries, _ = episode
    plain = probs(adapting(queries, imgs, red, return_prob=True))
    for steps in (None, 0):
        supports = adapting.load_supports(imgs, red, adapt_steps=steps)
        assert supports.params is None and supports.adapt_steps == 0
        for a, b in zip(probs(adapting(queries, supports=supports, return_prob=True)), plain):
            assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"adapt_steps=-1 with the config's episode_adaptation=.*steps must be a "
                                         'whole number >= 0'):
        adapting.load_supports(imgs, red, adapt_steps=-1)
    with pytest.raises(ValueError, match='adapt_steps and adapt_seed adapt the model when the supports are loaded'):
        adapting(queries, supports=supports, adapt_steps=2)


def test_adaptation_changes_predictions_and_a_zero_lr_does_not(root, demo_checkpoint, adapting, episode):
    """Two steps move the predictions; with lr=0 the adapted weights are the model's (the adaptation route, same logits)."""
    imgs, red, _, queries, _ = episode
    model_state = {k: v.clone() for k, v in adapting.model.state_dict().items()}
    plain = probs(adapting(queries, imgs, red, return_prob=True))
    supports = adapting.load_supports(imgs, red, adapt_steps=2)
    own = {n: p for n, p in adapting.model.named_parameters() if p.requires_grad}  # params='trainable'
    assert supports.adapt_steps == 2 and supports.params.keys() == own.keys()
    assert all(supports.params[n].shape == (1, *p.shape) for n, p in own.items())
    adapted = probs(adapting(queries, supports=supports, return_prob=True))
    change = max(np.abs(a - b).max() for a, b in zip(adapted, plain))
    print('largest probability change after 2 steps', change)
    assert change > 1e-2
    state = adapting.model.state_dict()
    assert state.keys() == model_state.keys()
    for k, v in model_state.items():
        assert torch.equal(state[k], v), k  # the model's own weights (and BN statistics) stay
    frozen = FewShotInferencer(osp.join(root, DEMO_CONFIG), demo_checkpoint, 'cpu',
                               cfg_options={**CFG_OPTIONS, 'episode_adaptation.optimizer.lr': 0.0})
    same = frozen(queries, imgs, red, return_datasamples=True, adapt_steps=2)['predictions']
    unadapted = frozen(queries, imgs, red, return_datasamples=True)['predictions']
    gap = max((a.seg_logits.data - b.seg_logits.data).abs().max().item() for a, b in zip(same, unadapted))
    print('largest logit difference with lr=0', gap)
    assert gap < 1e-5


def test_pseudo_queries_follow_the_seed(adapting, episode, monkeypatch):
    imgs, red, _, queries, _ = episode
    drawn = record_pseudo_queries(adapting, monkeypatch)
    runs = [probs(adapting(queries[:1], imgs, red, return_prob=True, adapt_steps=2, adapt_seed=seed))
            for seed in (5, 5, 6)]
    num = EpisodeAdapter.from_settings(dict(adapting.cfg.episode_adaptation, steps=2)).num_queries
    assert [d[0].shape for d in drawn] == [(num, 3, SIZE, SIZE)] * 3
    assert torch.equal(drawn[0][0], drawn[1][0]) and torch.equal(drawn[0][1], drawn[1][1])
    assert np.array_equal(runs[0][0], runs[1][0])
    assert not torch.equal(drawn[0][0], drawn[2][0])
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_adapted_support_set_predicts_as_the_episode_adaptation_test_route(demo_checkpoint, adapting, tmp_path,
                                                                           monkeypatch):
    """One episode of the config's test dataset (adapt_queries) through IFASegmentor.predict with
    test_cfg.episode_adaptation, and its files through the inferencer with the dataset's seed: the same
    pseudo-queries and logits."""
    write_deepglobe(str(tmp_path), counts=(4, 4, 4, 4, 4, 4), size=(40, 48))
    cfg = adapting.cfg
    steps = 2
    settings = dict(cfg.episode_adaptation, steps=steps)
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(tmp_path), shot=2, seed=3,
                                  num_episodes=3, adapt_queries=EpisodeAdapter.from_settings(settings).num_queries))
    index = 2
    info, item = dataset.get_data_info(index), dataset[index]
    model = MODELS.build(dict(cfg.model, test_cfg=dict(resize_to_original=True, episode_adaptation=settings)))
    load_checkpoint(model, demo_checkpoint, map_location='cpu', strict=True, logger='silent')
    model.eval()
    data = model.data_preprocessor(fewshot_collate([item]))
    with torch.no_grad():
        expected = model.predict(**data)[0].seg_logits.data

    drawn = record_pseudo_queries(adapting, monkeypatch)
    paths = [s['img_path'] for s in info['supports']], [s['seg_map_path'] for s in info['supports']]
    adapted = adapting.load_supports(*paths, adapt_steps=steps, seed=item_seed(dataset.seed, index))
    assert torch.equal(drawn[0][0], item['data_samples'].adapt_imgs)
    assert torch.equal(drawn[0][1], item['data_samples'].adapt_masks)
    logits, unadapted = (adapting(info['query']['img_path'], supports=supports, return_datasamples=True)
                         ['predictions'][0].seg_logits.data for supports in (adapted, adapting.load_supports(*paths)))
    gap, moved = (logits - expected).abs().max().item(), (unadapted - expected).abs().max().item()
    print(f'largest logit difference from the test route: {gap:.2e} (unadapted: {moved:.2e})')
    assert logits.shape == expected.shape == (2, 40, 48)  # the query's size
    assert gap < 1e-5 and moved > 1e-2


def test_query_listing_and_output_stems(tmp_path):
    """What the inferencer and tools/infer.py share: folders give their images (sorted, any case of extension),
    files and arrays pass through; stems are file stems or query_<index>, and two queries may not share one."""
    qdir, empty = tmp_path / 'queries', tmp_path / 'empty'
    qdir.mkdir()
    empty.mkdir()
    for name in ('b.PNG', 'a.jpg', 'notes.txt'):
        (qdir / name).write_bytes(b'')
    array = np.zeros((4, 4, 3), np.uint8)
    queries = list_queries([str(qdir), 'c.tif', array])
    assert queries[:3] == [str(qdir / 'a.jpg'), str(qdir / 'b.PNG'), 'c.tif'] and queries[3] is array
    assert list_queries(str(qdir)) == queries[:2]
    assert output_stems(queries) == ['a', 'b', 'c', 'query_00003']
    with pytest.raises(ValueError, match=re.escape(f'query folder {empty} holds no image (.jpg, .jpeg, .png')):
        list_queries([str(empty)])
    with pytest.raises(ValueError, match=f'queries {re.escape(str(qdir / "a.jpg"))} and a.png would both be written '
                                         'as a.png: rename one'):
        output_stems([str(qdir / 'a.jpg'), 'a.png'])


# ---------------------------------------------------------------------- tools/infer.py
def run_infer(root, checkpoint, *args, config: str = CONFIG):
    env = dict(os.environ, PYTHONPATH=root)
    cmd = [sys.executable, '-W', 'ignore', 'tools/infer.py', config, checkpoint, '--device', 'cpu',
           '--cfg-options', f'test_dataloader.dataset.pipeline.2.scale=({SIZE},{SIZE})', *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def write_supports(episode, folder) -> List[str]:
    imgs, red, _, _, _ = episode
    args = []
    for k, (img, mask) in enumerate(zip(imgs, red)):
        args += ['--support', save(img, folder / f'support{k}.png'),
                 save(mask.astype(np.uint8) * 255, folder / f'support{k}_mask.png')]
    return args


def test_cli_writes_masks_overlays_and_probabilities(root, checkpoint, episode, tmp_path):
    _, _, _, queries, gts = episode
    qdir = tmp_path / 'queries'
    qdir.mkdir()
    for i, q in enumerate(queries):
        save(q, qdir / f'q{i}.png')
    out = tmp_path / 'out'
    proc = run_infer(root, checkpoint, *write_supports(episode, tmp_path), '--query', str(qdir),
                     '--out', str(out), '--batch-size', '2', '--save-prob', '--opacity', '0.6', '--title', 'my run')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '3/3' in proc.stdout  # the progress bar
    assert sorted(os.listdir(out)) == ['pred', 'prob', 'vis']  # the inferencer's out_dir layout, and prob
    for i, (q, gt) in enumerate(zip(queries, gts)):
        mask = np.asarray(Image.open(out / 'pred' / f'q{i}.png'))
        assert mask.shape == q.shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert iou(mask == 255, gt) > RIGHT_IOU
        assert np.load(out / 'prob' / f'q{i}.npy').shape == q.shape[:2]
        overlay = np.asarray(Image.open(out / 'vis' / f'q{i}.png'))
        # 2 supports (80x96) | query | prediction, each in its aspect ratio, upscaled to 256 px high, titled
        tiles_w = 2 * round(256 * 96 / 80) + 2 * round(256 * q.shape[1] / q.shape[0])
        assert overlay.ndim == 3 and overlay.shape[0] > 256 and overlay.shape[1] >= tiles_w
    assert sorted(os.listdir(tmp_path)) == ['out', 'queries', *sorted(
        f'support{k}{s}.png' for k in range(2) for s in ('', '_mask'))]  # no temporary folder left


def test_cli_bad_input_writes_nothing(root, checkpoint, episode, tmp_path):
    supports = write_supports(episode, tmp_path)
    out = tmp_path / 'out'
    proc = run_infer(root, checkpoint, *supports[:-1], '--query', supports[1], '--out', str(out))
    assert proc.returncode != 0
    assert f'--support takes an image and its mask, got 1 path(s): {supports[-2]}' in proc.stderr
    qdir = tmp_path / 'queries'
    qdir.mkdir()
    save(episode[3][0], qdir / 'a.png')
    (qdir / 'b.jpg').write_bytes(b'\xff\xd8 truncated')
    proc = run_infer(root, checkpoint, *supports, '--query', str(qdir), '--out', str(out))
    assert proc.returncode != 0
    assert f'cannot read {qdir / "b.jpg"}' in proc.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith('.')]


def test_cli_checks_every_output_path_first(root, checkpoint, episode, tmp_path):
    supports = write_supports(episode, tmp_path)
    query = save(episode[3][0], tmp_path / 'q.png')
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    proc = run_infer(root, checkpoint, *supports, '--query', query, '--out', str(blocker / 'out'))
    assert proc.returncode != 0
    assert f'error: cannot create {blocker / "out"}: {blocker} exists and is not a folder' in proc.stderr
    out = tmp_path / 'out'
    (out / 'pred').mkdir(parents=True)
    (out / 'vis').write_text('')
    proc = run_infer(root, checkpoint, *supports, '--query', query, '--out', str(out))
    assert proc.returncode != 0 and '0/1' not in proc.stdout  # stopped before the first prediction
    assert f'error: cannot write outputs into {out / "vis"}: it exists and is not a folder' in proc.stderr
    assert sorted(os.listdir(out)) == ['pred', 'vis'] and not os.listdir(out / 'pred')


def test_output_check_names_unwritable_and_blocked_paths(tmp_path, monkeypatch):
    infer = load_script('tools/infer.py')
    out = tmp_path / 'out'
    (out / 'prob' / 'q.npy').mkdir(parents=True)
    infer.check_outputs(str(out), ['q'], save_prob=False)  # probs are not written
    with pytest.raises(ValueError, match=re.escape(f'cannot write {out / "prob" / "q.npy"}: a folder of that name')):
        infer.check_outputs(str(out), ['q'], save_prob=True)
    denied = str(out / 'pred')
    (out / 'pred').mkdir()
    monkeypatch.setattr(infer.os, 'access', lambda path, mode: str(path) != denied)  # tests run as root
    with pytest.raises(ValueError, match=re.escape(f'cannot write outputs into {denied}: no write permission')):
        infer.check_outputs(str(out), ['q'], save_prob=False)
    monkeypatch.setattr(infer.os, 'access', lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(f'no write permission in {tmp_path}')):
        infer.check_outputs(str(out), ['q'], save_prob=False)


def test_cli_adapts_to_the_support_set(root, demo_checkpoint, adapting, episode, tmp_path):
    imgs, red, _, queries, _ = episode
    query = save(queries[0], tmp_path / 'q.png')
    out = tmp_path / 'out'
    proc = run_infer(root, demo_checkpoint, *write_supports(episode, tmp_path), '--query', query, '--out', str(out),
                     '--save-prob', '--adapt-steps', '1', '--adapt-seed', '7', '--cfg-options',
                     *[f'{k}={v}' for k, v in ADAPT_LR.items()], config=DEMO_CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prob = np.load(out / 'prob' / 'q.npy')
    adapted = adapting(queries[0], imgs, red, return_prob=True, adapt_steps=1, adapt_seed=7)['predictions'][0]
    plain = adapting(queries[0], imgs, red, return_prob=True)['predictions'][0]
    assert np.allclose(prob, adapted['prob'], atol=1e-5) and not np.allclose(prob, plain['prob'], atol=1e-3)
    proc = run_infer(root, demo_checkpoint, *write_supports(episode, tmp_path), '--query', query, '--out', str(out),
                     '--adapt-steps', '-1', config=DEMO_CONFIG)
    assert proc.returncode != 0 and 'error: --adapt-steps must be 0 or more, got -1' in proc.stderr


def test_diverging_adaptation_is_refused_and_nothing_is_written(root, demo_checkpoint, adapting, episode, tmp_path):
    """A learning rate that makes the adapted weights NaN: an error naming the supports, no empty mask written."""
    imgs, red, _, queries, _ = episode
    diverging = FewShotInferencer(osp.join(root, DEMO_CONFIG), demo_checkpoint, 'cpu',
                                  cfg_options={**CFG_OPTIONS, 'episode_adaptation.optimizer.lr': 1e6})
    with pytest.raises(NonFiniteError, match=r'the prototypes of the supports .* are NaN or inf: adapting to them '
                                             r'diverged \(2 steps, optimizer .*1000000\.0.*\): '
                                             r'lower the learning rate'):
        diverging.load_supports(imgs, red, adapt_steps=2)
    query = save(queries[0], tmp_path / 'q.png')
    out = tmp_path / 'out'
    proc = run_infer(root, demo_checkpoint, *write_supports(episode, tmp_path), '--query', query, '--out', str(out),
                     '--adapt-steps', '2', '--cfg-options', 'episode_adaptation.optimizer.lr=1e6', config=DEMO_CONFIG)
    assert proc.returncode != 0 and 'are NaN or inf: adapting to them diverged' in proc.stderr
    assert not out.exists()


def test_non_finite_logits_name_the_query(inferencer, episode, monkeypatch):
    imgs, red, _, queries, _ = episode
    supports = inferencer.load_supports(imgs, red)
    original = inferencer.model.predict_with_support

    def nan_logits(*args, **kwargs):
        samples = original(*args, **kwargs)
        samples[1].seg_logits.data[0, 0, 0] = float('nan')
        return samples
    monkeypatch.setattr(inferencer.model, 'predict_with_support', nan_logits)
    with pytest.raises(NonFiniteError, match=r'query query #1: 1 of its logits are NaN or inf'):
        inferencer(queries[:2], supports=supports, batch_size=2)
