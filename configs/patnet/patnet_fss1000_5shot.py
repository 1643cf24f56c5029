_base_ = './patnet_fss1000_1shot.py'
shot = 5
