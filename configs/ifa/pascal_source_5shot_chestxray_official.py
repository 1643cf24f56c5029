_base_ = './pascal_source_1shot_chestxray_official.py'
shot = 5
