# CPU demo baseline, stage 2: the HSNet demo target config with PATNet's head and source model.
_base_ = './hsnet_deepglobe.py'
source_config = 'configs/demo/patnet_source.py'
model = dict(decode_head=dict(type='PATNetHead', in_channels=(512, 1024, 2048)))
