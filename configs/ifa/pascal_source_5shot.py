_base_ = './pascal_source_1shot.py'
shot = 5
