# Source domain: PASCAL VOC 2012 + SBD, all 20 classes (PASCAL-5i fold 4, 13,680 pairs).
data_root = 'data'
# the official per-image transform: PIL RGB, mask = (label == class), 400x400
pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='label'),
    dict(type='FewShotResize', scale=(400, 400)),
]
train_dataloader = dict(
    batch_size=12,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(type='Pascal5iDataset', data_root=data_root, fold=4, split='trn', shot=1, seed=0,
                 pipeline=pipeline))
