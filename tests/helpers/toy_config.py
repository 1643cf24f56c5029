# A few training iterations of the official R-50 IFA model on in-memory episodes.
_base_ = ['../../configs/_base_/default_runtime.py', '../../configs/_base_/models/ifa_r50.py']
custom_imports = dict(imports=['ifa_mmseg', 'tests.helpers.toy_episodes'], allow_failed_imports=False)
model = dict(backbone=dict(init_cfg=None))
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyEpisodeDataset', num_episodes=4, size=48))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[3], gamma=0.1)]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    non_finite=dict(type='NonFiniteCheckHook'))
randomness = dict(seed=0)
test_dataloader = dict(
    batch_size=3,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyEpisodeDataset', num_episodes=4, size=48))
test_evaluator = dict(type='FewShotIoUMetric')
test_cfg = dict(type='MultiSeedTestLoop')
test_seeds = (0, 1, 2)
