# CPU demo source domain: the synthetic shapes (12 classes, FSS-1000 layout) that tools/demo.py writes, 96 px.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(type='FSS1000Dataset', split='trn', ann_file='synthetic_splits/source.txt', seed=0, pipeline=[
        dict(type='LoadRGBImageFromFile'),
        dict(type='LoadBinaryMask', mode='threshold'),
        dict(type='FewShotResize', scale=(96, 96)),
    ]))
