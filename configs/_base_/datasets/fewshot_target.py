# What every target shares: episodic test over several seeds with both protocols, and
# IFA adaptation episodes built on the same dataset. A target sets the dataset type and
# the metric's class facts.
data_root = 'data'
# the official per-image transform: PIL RGB, mask >= 128, 400x400 (PIL bilinear / legacy nearest)
pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(400, 400)),
]
test_dataset = dict(data_root=data_root, shot=1, seed=0, episode_sampling='standard', pipeline=pipeline)
test_dataloader = dict(
    batch_size=12,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='fewshot_collate'),
    dataset=test_dataset)
test_evaluator = dict(
    type='FewShotIoUMetric',
    protocols=('standard', 'official'),
    # the official test.py batch (96 for 1-shot, 48 for 5-shot)
    official_batch_size=96)
test_cfg = dict(type='MultiSeedTestLoop', seeds=(0, 1, 2, 3, 4))
train_dataloader = dict(
    batch_size=12,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='fewshot_collate'),
    dataset=dict(type='IFAAdaptationDataset', dataset=test_dataset, support_pool='standard', seed=0))
