"""Distributed start-up that also works without GPUs (gloo on CPU)."""
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config


def _slurm_env(port: str) -> None:
    """torch.distributed env:// variables from a Slurm step."""
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ.setdefault('MASTER_PORT', port)
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ['SLURM_LOCALID']


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` and the process group for ``launcher``.

    mmengine's pytorch/slurm launchers call ``torch.cuda.set_device`` unconditionally.
    Without CUDA, the gloo process group is initialised here first (the Runner then
    skips its own init) and DDP gets ``device_ids=None``. With CUDA nothing changes.
    """
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env(str(cfg.get('env_cfg', {}).get('dist_cfg', {}).get('port', 29500)))
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} needs GPUs; on CPU use pytorch (torchrun) or slurm')
    dist.init_process_group(backend='gloo')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
