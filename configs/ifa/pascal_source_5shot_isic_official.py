_base_ = './pascal_source_1shot_isic_official.py'
shot = 5
