_base_ = './hsnet_fss1000_1shot.py'
shot = 5
