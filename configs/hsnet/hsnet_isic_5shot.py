_base_ = './hsnet_isic_1shot.py'
shot = 5
