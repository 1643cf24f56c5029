"""DINOv2 backbones by config (issue 14, requirement 5): converter, weights, training step, prediction.

The weights are generated: a random state dict in the key format of the original DINOv2 release
(``dinov2_vits14_pretrain.pth``), scaled down to a 2-block, 48-channel ViT/14 for the model runs, and at
full size (zeros) for the key mapping of the real ViT-S/14 and ViT-B/14.
"""
import os
import shutil
import subprocess
import sys
from collections import OrderedDict

import mmpretrain.models  # noqa: F401  (registers mmpretrain.VisionTransformer)
import pytest
import torch
from mmengine import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from ifa_mmseg.compat import safe_torch_load
from ifa_mmseg.engine.protocol import resolve_config
from ifa_mmseg.models import EpisodeAdapter

from .helpers.episodes import packed_episodes
from .helpers.scripts import load_script

CONVERTER = 'tools/model_converters/dinov2_to_mmpretrain.py'
TINY = dict(embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96)
SIZE = 56  # 4 x 14


def original_dinov2(embed=48, layers=2, ffn=96, patch=14, grid=5, chunks=0, fill=torch.randn, seed=0, swiglu=0):
    """A state dict with the keys and shapes of an original DINOv2 release (``ls1.gamma``, ``mask_token``...);
    ``swiglu``: the hidden width of ViT-g's fused SwiGLU MLP (``mlp.w12`` / ``mlp.w3``) instead of fc1/fc2."""
    torch.manual_seed(seed)
    sd = OrderedDict(cls_token=fill(1, 1, embed), pos_embed=fill(1, 1 + grid * grid, embed),
                     mask_token=fill(1, embed))
    sd['patch_embed.proj.weight'] = fill(embed, 3, patch, patch)
    sd['patch_embed.proj.bias'] = fill(embed)
    for n in range(layers):
        b = f'blocks.{n // (layers // chunks)}.{n}.' if chunks else f'blocks.{n}.'
        for name, shape in (('norm1.weight', (embed, )), ('norm1.bias', (embed, )),
                            ('attn.qkv.weight', (3 * embed, embed)), ('attn.qkv.bias', (3 * embed, )),
                            ('attn.proj.weight', (embed, embed)), ('attn.proj.bias', (embed, )),
                            ('ls1.gamma', (embed, )), ('norm2.weight', (embed, )), ('norm2.bias', (embed, )),
                            ('mlp.fc1.weight', (ffn, embed)), ('mlp.fc1.bias', (ffn, )),
                            ('mlp.fc2.weight', (embed, ffn)), ('mlp.fc2.bias', (embed, )),
                            ('ls2.gamma', (embed, ))):
            if swiglu and name.startswith('mlp.'):
                continue
            sd[b + name] = fill(*shape)
        if swiglu:
            sd[b + 'mlp.w12.weight'], sd[b + 'mlp.w12.bias'] = fill(2 * swiglu, embed), fill(2 * swiglu)
            sd[b + 'mlp.w3.weight'], sd[b + 'mlp.w3.bias'] = fill(embed, swiglu), fill(embed)
    sd['norm.weight'] = fill(embed)
    sd['norm.bias'] = fill(embed)
    return sd


@pytest.fixture(scope='module')
def converter():
    return load_script(CONVERTER)


def run_converter(root, *args):
    return subprocess.run([sys.executable, '-W', 'ignore', CONVERTER, *args], cwd=root, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=root))


@pytest.fixture(scope='module')
def converted_file(root, tmp_path_factory):
    """The tiny original-format dict, written and converted by the command line tool."""
    folder = tmp_path_factory.mktemp('dinov2')
    src, dst = folder / 'dinov2_tiny_pretrain.pth', folder / 'dinov2_tiny_mmpretrain.pth'
    torch.save(original_dinov2(), src)
    proc = run_converter(root, str(src), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert '2 blocks, 48 channels, patch 14, 70 px' in proc.stdout
    return str(dst)


def tiny_cfg(root, config, **backbone):
    cfg = Config.fromfile(f'{root}/configs/ifa/{config}.py')
    cfg.model.backbone.arch = TINY  # a string in the config: replaced, not merged
    cfg.merge_from_dict({f'model.backbone.{k}': v for k, v in dict(img_size=SIZE, **backbone).items()})
    return cfg


# ------------------------------------------------------------------------------------------- the converter
@pytest.mark.parametrize('embed,ffn,arch', [(384, 1536, 'dinov2-small'), (768, 3072, 'base')])
def test_full_size_release_keys_map_onto_mmpretrain(converter, embed, ffn, arch):
    """Every key of a real-size ViT-S/14 / ViT-B/14 release fills mmpretrain's ViT, nothing is left over."""
    from mmpretrain.models import VisionTransformer
    sd = original_dinov2(embed, 12, ffn, grid=37, fill=torch.zeros)
    out, inferred = converter.convert_dinov2(sd)
    model = VisionTransformer(arch=arch, img_size=518, patch_size=14, layer_scale_init_value=1e-5,
                              out_type='featmap')
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert inferred['img_size'] == 518 and inferred['patch_size'] == 14
    assert inferred['arch'] == dict(embed_dims=embed, num_layers=12, num_heads=embed // 64, feedforward_channels=ffn)


def test_mapping_values(converter):
    sd = original_dinov2()
    out, _ = converter.convert_dinov2(sd)
    assert 'mask_token' not in out and len(out) == len(sd) - 1
    pairs = {'patch_embed.proj.weight': 'patch_embed.projection.weight',
             'blocks.1.ls1.gamma': 'layers.1.attn.gamma1.weight',
             'blocks.1.ls2.gamma': 'layers.1.ffn.gamma2.weight',
             'blocks.0.mlp.fc1.bias': 'layers.0.ffn.layers.0.0.bias',
             'blocks.0.mlp.fc2.weight': 'layers.0.ffn.layers.1.weight',
             'blocks.1.norm2.weight': 'layers.1.ln2.weight',
             'blocks.0.attn.qkv.weight': 'layers.0.attn.qkv.weight',
             'norm.bias': 'ln1.bias', 'pos_embed': 'pos_embed', 'cls_token': 'cls_token'}
    for old, new in pairs.items():
        assert torch.equal(out[new], sd[old]), old


def test_swiglu_mlp_of_vit_g(converter):
    from mmpretrain.models import VisionTransformer
    sd = original_dinov2(swiglu=64)
    out, arch = converter.convert_dinov2(sd)
    assert arch['layer_cfgs'] == dict(ffn_type='swiglu_fused')
    assert torch.equal(out['layers.1.ffn.w12.weight'], sd['blocks.1.mlp.w12.weight'])
    model = VisionTransformer(out_type='featmap', **arch)
    model.load_state_dict(out, strict=True)


def test_chunked_and_dataparallel_layouts(converter):
    plain, _ = converter.convert_dinov2(original_dinov2())
    chunked, _ = converter.convert_dinov2(original_dinov2(layers=2, chunks=2))
    assert all(torch.equal(plain[k], chunked[k]) for k in plain) and set(plain) == set(chunked)
    wrapped, _ = converter.convert_dinov2({f'module.{k}': v for k, v in original_dinov2().items()})
    assert set(wrapped) == set(plain)


@pytest.mark.parametrize('change,message', [
    (lambda sd: sd.update(register_tokens=torch.zeros(1, 4, 48)), r'register_tokens: .*"_reg".* not supported'),
    (lambda sd: sd.update({'head.weight': torch.zeros(2, 48)}), r'head\.weight: unknown key'),
    (lambda sd: sd.update({'blocks.0.attn.qkv.lora': torch.zeros(2)}), r'blocks\.0\.attn\.qkv\.lora: not expected'),
    (lambda sd: sd.pop('blocks.1.ls2.gamma'), r'blocks\.1\.ls2\.gamma: missing'),
    (lambda sd: sd.pop('norm.weight'), r'norm\.weight: missing'),
    (lambda sd: sd.update({'blocks.1.mlp.fc2.weight': torch.zeros(48, 7)}),
     r'blocks\.1\.mlp\.fc2\.weight: shape \(48, 7\), expected \(48, 96\)'),
    (lambda sd: [sd.pop(k) for k in [k for k in sd if k.startswith('blocks.0.')]], r'blocks\.0\.\*: missing'),
    (lambda sd: sd.update(pos_embed=torch.zeros(1, 27, 48)), 'pos_embed: 26 patch positions are not a square'),
])
def test_errors_name_the_key(converter, change, message):
    sd = original_dinov2()
    change(sd)
    with pytest.raises(converter.ConversionError, match=message):
        converter.convert_dinov2(sd)


def test_command_line_errors(root, tmp_path):
    src = tmp_path / 'reg.pth'
    torch.save(dict(original_dinov2(), register_tokens=torch.zeros(1, 4, 48)), src)
    proc = run_converter(root, str(src), str(tmp_path / 'out.pth'))
    assert proc.returncode != 0 and f'{src}: register_tokens:' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()
    proc = run_converter(root, str(tmp_path / 'absent.pth'), str(tmp_path / 'out.pth'))
    assert proc.returncode != 0 and 'absent.pth: no such file' in proc.stderr
    proc = run_converter(root, str(src), str(tmp_path / 'no' / 'out.pth'))
    assert proc.returncode != 0 and 'the folder' in proc.stderr and 'does not exist' in proc.stderr


def test_converted_file_has_mmpretrains_layout(converted_file):
    ckpt = safe_torch_load(converted_file)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert 'backbone.layers.1.ffn.gamma2.weight' in ckpt['state_dict']


# ----------------------------------------------------------------------------------------- the model runs
def test_source_config_loads_trains_frozen_blocks_and_predicts(root, converted_file):
    """init_cfg from the converted file; one training step moves only block 2 and the final norm."""
    cfg = tiny_cfg(root, 'pascal_source_1shot_dinov2_vits14', frozen_stages=1,
                   **{'init_cfg.checkpoint': converted_file})
    model = MODELS.build(cfg.model)
    model.init_weights()
    weights = {k[len('backbone.'):]: v for k, v in safe_torch_load(converted_file)['state_dict'].items()}
    state = model.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items() if k != 'pos_embed')
    assert state['pos_embed'].shape == (1, 17, 48) and weights['pos_embed'].shape == (1, 26, 48)  # 5x5 -> 4x4
    assert torch.equal(state['pos_embed'][:, 0], weights['pos_embed'][:, 0])  # the class token's position

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('backbone.layers.1.', 'backbone.ln1.')) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1))
    model.train()
    data = model.data_preprocessor(packed_episodes(2, 1, SIZE, seed=3), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None and bool(param.grad.abs().sum() > 0)) == (name in trainable), name
    model.zero_grad(set_to_none=True)
    logs = model.train_step(packed_episodes(2, 1, SIZE, seed=3), optim)
    assert torch.isfinite(logs['loss']) and set(logs) >= {'loss_q_refine', 'loss_s1'}
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (name not in trainable), name

    model.eval()
    out = model.test_step(packed_episodes(2, 1, SIZE, seed=4))
    assert len(out) == 2 and out[0].pred_sem_seg.data.shape == (1, SIZE, SIZE)
    with torch.no_grad():
        assert model.extract_feat(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 48, 4, 4)


def test_target_config_load_from_and_frozen_backbone_without_training(root, converted_file, tmp_path):
    """The target config (init_cfg=None) takes every weight from load_from: a source checkpoint, or the
    converted DINOv2 file itself (backbone.* keys) for a fully frozen, training-free model."""
    cfg = tiny_cfg(root, 'deepglobe_1shot_dinov2_vits14', frozen_stages=2)
    assert cfg.model.backbone.init_cfg is None
    model = MODELS.build(cfg.model)
    assert not any(p.requires_grad for p in model.parameters())
    load_checkpoint(model, converted_file, map_location='cpu', strict=False)
    weights = safe_torch_load(converted_file)['state_dict']
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items() if k != 'backbone.pos_embed')
    model.eval()
    with torch.no_grad():
        first = model.test_step(packed_episodes(1, 1, SIZE, seed=5))[0].seg_logits.data
    # a source-stage checkpoint (what load_from names) round-trips through the segmentor's keys
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'epoch_20.pth')
    again = MODELS.build(cfg.model)
    load_checkpoint(again, str(tmp_path / 'epoch_20.pth'), map_location='cpu', strict=True)
    again.eval()
    with torch.no_grad():
        assert torch.equal(again.test_step(packed_episodes(1, 1, SIZE, seed=5))[0].seg_logits.data, first)


@pytest.mark.parametrize('arch,channels', [('vits14', 384), ('vitb14', 768)])
def test_real_size_configs_build_with_a_stride_14_feature(root, arch, channels):
    cfg = Config.fromfile(f'{root}/configs/ifa/deepglobe_1shot_dinov2_{arch}.py')
    for shot in (1, 5):
        source = Config.fromfile(f'{root}/configs/ifa/pascal_source_{shot}shot_dinov2_{arch}.py')
        assert source.model.backbone.init_cfg == dict(
            type='Pretrained', checkpoint=f'checkpoints/dinov2_{arch}_mmpretrain.pth', prefix='backbone.')
        assert source.train_dataloader.dataset.pipeline[-1].scale == (392, 392)
        assert source.model.backbone == dict(cfg.model.backbone, init_cfg=source.model.backbone.init_cfg)
    assert cfg.test_dataloader.dataset.pipeline[-1].scale == (392, 392)
    assert cfg.model.backbone.img_size % cfg.model.backbone.patch_size == 0
    model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert backbone.patch_resolution == (28, 28) and backbone.num_layers == 12
    trainable = {n.split('.')[1] if n.startswith('layers.') else n.split('.')[0]
                 for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable == {'10', '11', 'ln1'}  # blocks 11-12 and the final norm
    model.eval()
    with torch.no_grad():
        feat = model.extract_feat(torch.zeros(1, 3, SIZE, SIZE))
    assert feat.shape == (1, channels, SIZE // 14, SIZE // 14)


def test_input_size_is_stated_once(root, tmp_path):
    """The model base's input_size gives img_size and every run's FewShotResize scale (set it to 448 in a copy of
    the configs: all follow); the resolved config, dumped as a run keeps it, loads back the same."""
    configs = tmp_path / 'configs'
    shutil.copytree(os.path.join(root, 'configs'), configs)
    base = configs / '_base_' / 'models' / 'ifa_dinov2_vits14.py'
    base.write_text(base.read_text().replace('\ninput_size = 392\n', '\ninput_size = 448\n'))
    for arch in ('vits14', 'vitb14'):
        for run, loader in (('deepglobe_1shot', 'test_dataloader'), ('pascal_source_1shot', 'train_dataloader'),
                            ('pascal_source_5shot', 'train_dataloader')):
            cfg = Config.fromfile(str(configs / 'ifa' / f'{run}_dinov2_{arch}.py'))
            assert cfg.model.backbone.img_size == 448 and cfg[loader].dataset.pipeline[-1].scale == (448, 448), run
    cfg = resolve_config(f'{root}/configs/ifa/deepglobe_1shot_dinov2_vits14.py')
    cfg.dump(str(tmp_path / 'dumped.py'))
    assert Config.fromfile(str(tmp_path / 'dumped.py')).to_dict() == cfg.to_dict()


TINY_TARGET = """_base_ = '{root}/configs/ifa/deepglobe_1shot_dinov2_vits14.py'
load_from = '{ckpt}'
data_root = '{data}'
test_episodes = 8
test_seeds = (0, )
model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96),
                           img_size=56, frozen_stages=1))
test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'), dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(56, 56))]))
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_epochs=1)
"""


def test_tools_adapt_and_evaluate_from_the_converted_file(root, converted_file, tmp_path):
    """tools/train.py (IFA adaptation) from the converted DINOv2 file, and tools/test.py evaluating that file
    directly (the training-free route), on a fake Deepglobe layout with the tiny ViT."""
    from .helpers import fake_layouts
    data = str(tmp_path / 'data')
    fake_layouts.write_deepglobe(data)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(TINY_TARGET.format(root=root, ckpt=converted_file, data=data))
    env = dict(os.environ, PYTHONPATH=root)
    for args in (['tools/train.py', str(cfg)], ['tools/test.py', str(cfg), converted_file]):
        proc = subprocess.run([sys.executable, '-W', 'ignore', *args, '--work-dir', str(tmp_path / 'work')],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = proc.stdout + proc.stderr
        assert 'missing keys in source state_dict' not in log  # every weight of the segmentor came from the file
    assert 'mIoU' in log and 'official.mIoU' in log
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_per_episode_adaptation_of_the_last_block(root, converted_file):
    """adaptation_labels='episode' on DINOv2: the trainable block adapts per episode, alone = in a batch."""
    cfg = tiny_cfg(root, 'deepglobe_1shot_dinov2_vits14', frozen_stages=1)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, converted_file, map_location='cpu', strict=False, logger='silent')
    model.eval()
    adapter = EpisodeAdapter(steps=2, queries_per_step=2, optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
                             params='trainable')
    names = adapter.parameter_names(model)
    assert names and all(n.startswith(('backbone.layers.1.', 'backbone.ln1.')) for n in names)
    data = model.data_preprocessor(packed_episodes(3, 1, SIZE, seed=6))
    supports, masks = data['data_samples'].support_imgs, data['data_samples'].support_masks
    queries = supports.flip(-1).repeat(1, 4, 1, 1, 1)  # flipped supports as pseudo-queries
    query_masks = masks.flip(-1).repeat(1, 4, 1, 1)

    def predict(idx, adapter):
        params = adapter.adapt(model, supports[idx], masks[idx], queries[idx], query_masks[idx])
        assert set(params) == set(names)
        with torch.no_grad():
            return model.forward_episode(data['inputs'][idx], supports[idx], masks[idx], params=params)['q_refine']

    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = predict(slice(None), adapter)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    for i in range(3):
        assert (predict(slice(i, i + 1), adapter)[0] - batch[i]).abs().max() <= 1e-5
    with torch.no_grad():
        plain = model.forward_episode(data['inputs'], supports, masks)['q_refine']
    assert (batch - plain).abs().max() > 1e-3
    control = EpisodeAdapter(steps=2, queries_per_step=2, optimizer=dict(type='SGD', lr=0.0), params='trainable')
    assert (predict(slice(None), control) - plain).abs().max() <= 1e-5
    # a frozen backbone adapts only what the config names
    frozen = MODELS.build(tiny_cfg(root, 'deepglobe_1shot_dinov2_vits14', frozen_stages=2).model)
    with pytest.raises(ValueError, match='no parameter adapts'):
        EpisodeAdapter.from_settings(dict(recipe='full')).parameter_names(frozen)
    assert all(n.startswith('backbone.layers.1.') for n in EpisodeAdapter.from_settings(
        dict(recipe='full', params=['backbone.layers.1'])).parameter_names(frozen))
