# Source-training loss (official train.py): SSP's loss plus the BFP support term;
# iterations 2 and 3 carry no weight, so they are not computed.
_base_ = './ifa_r50.py'
model = dict(
    decode_head=dict(
        loss_weights=dict(_delete_=True, q_refine=1.0, q1=1.0, q_self=1.0, s_self=0.2, s1=0.4)))
