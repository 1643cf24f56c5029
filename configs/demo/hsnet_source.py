# CPU demo baseline, stage 1: HSNet trained on the synthetic shape domain with the official optimizer (Adam 1e-3).
# No ImageNet weights in the demo: the frozen ResNet-50 keeps its random initialisation, so only the head learns
# and the correlations are those of random features; a stand-in, not the published setting.
_base_ = ['../_base_/default_runtime.py', '../_base_/models/hsnet_r50.py', '../_base_/datasets/demo_source.py',
          '../_base_/schedules/hypercorr_source.py']
data_root = 'work_dirs/demo/data'
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_epochs=3)  # about 1 min per epoch on one CPU thread
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(max_keep_ckpts=1))
