# CPU demo baseline, stage 1: PATNet, the HSNet demo with PATNet's head (as ../_base_/models/patnet_r50.py).
_base_ = './hsnet_source.py'
model = dict(decode_head=dict(type='PATNetHead', in_channels=(512, 1024, 2048)))
