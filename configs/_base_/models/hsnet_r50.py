# HSNet (ICCV 2021): frozen torchvision ResNet-50 (every bottleneck of layers 2-4) + 4D-convolution head.
# The backbone starts from torchvision's ImageNet weights (IMAGENET1K_V1, what the official
# `resnet50(pretrained=True)` loads); a trained official best_model.pt converts with
#   python tools/model_converters/hsnet_official_to_mmseg.py best_model.pt checkpoints/hsnet_r50.pth
data_preprocessor = dict(
    type='FewShotSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=False)
model = dict(
    type='HypercorrSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MultiLayerResNet',
        depth=50,
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    decode_head=dict(
        type='HSNetHead',
        num_blocks=(4, 6, 3),
        channels=(16, 64, 128),
        groups=4,
        ignore_index=255,
        align_corners=True),
    test_cfg=dict(resize_to_original=False))
