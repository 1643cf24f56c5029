# CPU demo, stage 2: IFA adaptation on the synthetic Deepglobe-like target, then evaluation
# over 5 episode seeds with both protocols (standard support pool, held out from every query).
_base_ = ['../_base_/default_runtime.py', '../_base_/models/ifa_r18_demo.py', '../_base_/datasets/deepglobe.py',
          '../_base_/schedules/adapt_20e.py']
source_config = 'configs/demo/source.py'
load_from = 'work_dirs/demo/source/epoch_6.pth'
data_root = 'work_dirs/demo/data'
pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(96, 96)),
]
test_dataset = dict(data_root=data_root, num_episodes=120, pipeline=pipeline)
test_dataloader = dict(batch_size=12, num_workers=0, dataset=test_dataset)
train_dataloader = dict(batch_size=6, dataset=dict(dataset=test_dataset, num_episodes=12))
