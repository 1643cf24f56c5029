# 5-shot source episodes: not the official recipe (train.py trains 1-shot only; the target configs test that
# 1-shot model at both shots). To test this one instead: --cfg-options source_config=THIS_FILE
_base_ = './patnet_pascal_source_1shot.py'
shot = 5
