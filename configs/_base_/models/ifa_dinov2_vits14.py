# IFA head on mmpretrain's DINOv2 ViT-S/14 (384 channels, stride 14): no ImageNet labels anywhere. ViT-B/14: the
# *_dinov2_vitb14.py configs set arch='base' (768 channels) on top of their ViT-S/14 configs.
# Weights: mmpretrain's converted file (configs/dinov2/metafile.yml in mmpretrain,
# vit-small-p14_dinov2-pre_3rdparty_20230426-5641ca5a.pth) saved as the path below, or the original
# release converted with
#   python tools/model_converters/dinov2_to_mmpretrain.py dinov2_vits14_pretrain.pth \
#       checkpoints/dinov2_vits14_mmpretrain.pth
# Feature: the patch tokens of the last block after DINOv2's final LayerNorm (out_indices=-1), the
# features DINOv2 was trained to make comparable by cosine similarity, which is what the head computes.
# Size: episodes at input_size px (28 x 14, the multiple of 14 nearest below the official 400), 28 x 28 tokens;
# img_size sizes pos_embed for that grid (the 37 x 37 release grid is resized once, at load). The configs using
# this base resize their episodes to it (FewShotResize scale from _base_.input_size).
# Trainable: frozen_stages=10 freezes patch/position embeddings, the class token and blocks 1-10;
# blocks 11-12 and the final norm train. frozen_stages=12 freezes the whole backbone (the head is
# parameter-free, so such a model is evaluated directly, without training).
_base_ = './ifa_r50.py'
input_size = 392
# Configs using this base add 'mmpretrain.models' to custom_imports themselves (default_runtime.py sets
# custom_imports, and two bases may not set the same key).
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='dinov2-small',
        img_size=input_size,
        patch_size=14,
        layer_scale_init_value=1e-5,
        out_type='featmap',
        out_indices=-1,
        final_norm=True,
        frozen_stages=10,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/dinov2_vits14_mmpretrain.pth',
            prefix='backbone.')))
