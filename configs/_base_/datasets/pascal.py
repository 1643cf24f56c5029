# Source domain: PASCAL VOC 2012 + SBD, all 20 classes (PASCAL-5i fold 4, 13,680 pairs).
train_dataloader = dict(
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(
        type='Pascal5iDataset',
        fold=4,
        split='trn',
        seed=0,
        # the official per-image transform: PIL RGB, mask = (label == class), 400x400
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(type='LoadBinaryMask', mode='label'),
            dict(type='FewShotResize', scale=(400, 400)),
        ]))
