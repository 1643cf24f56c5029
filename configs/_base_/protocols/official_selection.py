# Official model selection (train.py, ifa.py): after every epoch the model is scored on the
# seed-0 test episodes of the target (official sampling), at the training batch size, with
# the official metric, and the best epoch is kept (>=: a tie goes to the later epoch).
# A config using this sets the target's dataset type and official class count, and its
# checkpoint hook: dict(type='FewShotCheckpointHook', save_best='official.mIoU', rule='greater_equal').
val_dataloader = dict(
    batch_size=12,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(
        data_root='data',
        shot=1,
        seed=0,
        episode_sampling='official',
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(type='LoadBinaryMask', mode='threshold'),
            dict(type='FewShotResize', scale=(400, 400)),
        ]))
val_evaluator = dict(type='FewShotIoUMetric', protocols=('official', ), official_batch_size=12)
val_cfg = dict(type='ValLoop')
