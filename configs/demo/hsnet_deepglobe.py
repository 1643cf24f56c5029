# CPU demo baseline, stage 2: the HSNet demo source model on the synthetic Deepglobe-like target, in PATNet's
# setting (adaptation_labels='none'); the facts and the 96 px episodes of demo/deepglobe.py.
_base_ = '../hsnet/hsnet_deepglobe_1shot.py'
source_config = 'configs/demo/hsnet_source.py'
data_root = 'work_dirs/demo/data'
test_episodes = 120
test_dataloader = dict(num_workers=0, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(96, 96)),
]))
train_dataloader = dict(batch_size=6, dataset=dict(num_episodes=12))  # adaptation_labels=pool: as demo/deepglobe.py
