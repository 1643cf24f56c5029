_base_ = './pascal_source_1shot_fss1000_official.py'
shot = 5
