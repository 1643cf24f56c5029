_base_ = './pascal_source_1shot_deepglobe_official.py'
shot = 5
