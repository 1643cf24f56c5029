_base_ = './pascal_source_1shot_dinov2_vits14.py'
shot = 5
