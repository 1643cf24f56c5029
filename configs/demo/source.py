# CPU demo, stage 1: source training on the synthetic shape domain (written by tools/demo.py).
_base_ = ['../_base_/default_runtime.py', '../_base_/models/ifa_r18_demo.py', '../_base_/datasets/demo_source.py',
          '../_base_/schedules/source_20e.py']
data_root = 'work_dirs/demo/data'
# the source-training loss (as ifa_r50_source.py)
model = dict(decode_head=dict(loss_weights=dict(_delete_=True, q_refine=1.0, q1=1.0, q_self=1.0, s_self=0.2, s1=0.4)))
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=6, eta_min=1e-3)]
train_cfg = dict(max_epochs=6)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(max_keep_ckpts=1))
