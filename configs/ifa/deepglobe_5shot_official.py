_base_ = './deepglobe_1shot_official.py'
shot = 5
