_base_ = './patnet_chestxray_1shot.py'
shot = 5
