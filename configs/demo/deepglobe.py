# CPU demo, stage 2: IFA adaptation on the synthetic Deepglobe-like target, then evaluation over
# the test seeds with both metrics (standard support pool, held out from every evaluated query).
_base_ = ['../_base_/default_runtime.py', '../_base_/models/ifa_r18_demo.py', '../_base_/datasets/deepglobe.py',
          '../_base_/schedules/adapt_20e.py']
source_config = 'configs/demo/source.py'
load_from = 'work_dirs/demo/source/epoch_6.pth'
data_root = 'work_dirs/demo/data'
test_episodes = 120
test_dataloader = dict(num_workers=0, dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'),
    dict(type='LoadBinaryMask', mode='threshold'),
    dict(type='FewShotResize', scale=(96, 96)),
]))
train_dataloader = dict(batch_size=6, dataset=dict(num_episodes=12))
# BatchNorm frozen during adaptation, as in the official model (IFAResNet: norm_eval, no affine updates):
# the source model's statistics and affine parameters are kept, so any gain is the IFA loss's, not
# BatchNorm re-estimating its statistics on the target. Source training (source.py) still trains BN.
model = dict(backbone=dict(norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True))
