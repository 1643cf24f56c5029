_base_ = './pascal_source_1shot_chestxray_official.py'
train_dataloader = dict(batch_size=6, dataset=dict(shot=5))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[1333, 2666], gamma=0.1)]
val_dataloader = dict(batch_size=6, dataset=dict(shot=5))
val_evaluator = dict(official_batch_size=6)
