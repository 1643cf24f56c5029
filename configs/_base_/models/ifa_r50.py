# IFA / SSP model: truncated deep-stem ResNet-50 + parameter-free IFA head.
# The backbone starts from the SSP/IFA ImageNet weights, converted with
#   python tools/model_converters/ifa_official_to_mmseg.py pretrained/resnet50.pth \
#       checkpoints/resnet50_ifa_imagenet.pth
data_preprocessor = dict(
    type='FewShotSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=False)
model = dict(
    type='IFASegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='IFAResNet',
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50_ifa_imagenet.pth')),
    decode_head=dict(
        type='IFAHead',
        scale=10.0,
        fg_thresh=0.7,
        bg_thresh=0.6,
        topk=12,
        local_temperature=2.0,
        map_eps=1e-5,
        fg_mix=(0.5, 0.5),
        bg_mix=(0.3, 0.7),
        refine=True,
        refine_mix=(0.5, 0.2, 0.3),
        refine_logit_mix=(0.7, 0.3),
        num_iterations=3,
        # IFA adaptation loss (official ifa.py); source training overrides it
        loss_weights=dict(q_refine=1.0, q1=1.0, q_self=1.0, s_self=0.2, s1=0.4,
                          q2=0.1, s2=0.1, q3=0.1, s3=0.1),
        support_order='correct',
        ignore_index=255,
        align_corners=True),
    test_cfg=dict(resize_to_original=False))
