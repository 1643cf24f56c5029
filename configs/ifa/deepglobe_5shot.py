_base_ = './deepglobe_1shot.py'
shot = 5
