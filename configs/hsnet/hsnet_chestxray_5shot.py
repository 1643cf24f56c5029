_base_ = './hsnet_chestxray_1shot.py'
shot = 5
