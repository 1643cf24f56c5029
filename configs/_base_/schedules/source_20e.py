# Official source training (train.py): SGD on the trainable convs (layer2/3), 20 epochs over the
# episodes, batch 12 (1-shot) or 6; LR /10 at thirds of 24000 // batch iterations (666 and 1333 at
# batch 12). The batch size and milestones are derived from shot unless stated.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=1)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='FewShotLoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook plus the official '>=' best rule, which selection may ask for
    checkpoint=dict(type='FewShotCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='FewShotVisualizationHook', draw=False),
    non_finite=dict(type='NonFiniteCheckHook'))  # a NaN/inf loss stops training, naming the iteration and term
# new episode draws (supports, augmentations) every epoch, from (seed, epoch, index)
custom_hooks = [dict(type='EpisodeResampleHook')]
randomness = dict(seed=0)
