_base_ = './fss1000_1shot.py'
shot = 5
