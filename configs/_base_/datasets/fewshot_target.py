# What every target shares: episodic test over the test_seeds with the chosen metrics. A target
# sets its dataset type; the facts (data_root, shot, test_episodes, ...) are filled in by the resolver.
test_dataloader = dict(
    batch_size=12,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='fewshot_collate'),
    # the official per-image transform: PIL RGB, mask >= 128, 400x400 (PIL bilinear / legacy nearest)
    dataset=dict(pipeline=[
        dict(type='LoadRGBImageFromFile'),
        dict(type='LoadBinaryMask', mode='threshold'),
        dict(type='FewShotResize', scale=(400, 400)),
    ]))
test_evaluator = dict(type='FewShotIoUMetric')
test_cfg = dict(type='MultiSeedTestLoop')
