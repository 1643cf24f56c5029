_base_ = './patnet_isic_1shot.py'
shot = 5
