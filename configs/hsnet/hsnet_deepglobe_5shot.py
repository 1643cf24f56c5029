_base_ = './hsnet_deepglobe_1shot.py'
shot = 5
