_base_ = './patnet_deepglobe_1shot.py'
shot = 5
