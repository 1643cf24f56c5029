# HSNet on Deepglobe in PATNet's setting: the PASCAL source model tested on the target (adaptation_labels='none'),
#   python tools/test.py THIS_CONFIG work_dirs/hsnet_pascal_source_1shot/best.pth
# With --cfg-options adaptation_labels=pool (or test_pool), tools/train.py first trains on the target (our schedule).
_base_ = [
    '../_base_/default_runtime.py', '../_base_/models/hsnet_r50.py', '../_base_/datasets/deepglobe.py',
    '../_base_/schedules/hypercorr_adapt.py'
]
adaptation_labels = 'none'
source_config = 'configs/hsnet/hsnet_pascal_source_1shot.py'  # load_from: its best.pth, tested at every shot
model = dict(backbone=dict(init_cfg=None))  # every weight comes from load_from
