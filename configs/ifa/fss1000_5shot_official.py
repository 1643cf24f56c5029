_base_ = './fss1000_1shot_official.py'
shot = 5
