"""What tools/train.py and tools/test.py share: common flags and config loading."""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from .config_path import get_config_path
from .errors import NonFiniteError, ProtocolError

AMP_DTYPES = ('float16', 'bfloat16')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher`` and the launcher's ``--local-rank``."""
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (autocast to --amp-dtype)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES, default='float16',
                        help='the autocast dtype of --amp (bfloat16 needs no loss scaling)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def enable_amp(cfg: Config, dtype: str = 'float16') -> None:
    """Mixed precision for every stage ``cfg`` has: training and multi-seed testing.

    Training gets mmengine's ``AmpOptimWrapper`` (a dynamic loss scale for float16, none
    needed for bfloat16); a ``MultiSeedTestLoop`` runs its model under autocast.
    """
    if dtype not in AMP_DTYPES:
        raise ValueError(f'amp dtype must be one of {AMP_DTYPES}, got {dtype!r}')
    if cfg.get('optim_wrapper') is not None:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = dtype
        cfg.optim_wrapper.loss_scale = cfg.optim_wrapper.get('loss_scale', 'dynamic' if dtype == 'float16' else 1.0)
    if cfg.get('test_cfg', {}).get('type') == 'MultiSeedTestLoop':
        cfg.test_cfg.amp_dtype = dtype


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` (a file, or a shipped config's name) with the overrides; work dir from the flag, the
    config, or ./work_dirs/<name>."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.config):  # a shipped config by name: 'ifa/deepglobe_1shot.py', 'deepglobe_1shot'
        try:
            args.config = get_config_path(args.config)
        except FileNotFoundError as err:
            sys.exit(f'config {args.config!r} is neither a file nor a shipped config name: {err}')
    try:
        cfg = Config.fromfile(args.config)
    except FileNotFoundError as err:  # a _base_ (e.g. a misspelt ifa_mmseg:: name): the message names it
        sys.exit(f'error: {err}')
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """The config's runner (``runner_type``, ``FewShotRunner`` in our configs); a config error exits with its message."""
    from mmseg.registry import RUNNERS

    try:
        return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    except ProtocolError as err:
        sys.exit(f'{cfg.filename}: {err}')


def run_stage(cfg: Config, stage: str) -> None:
    """Build the config's runner and run ``stage`` (``'train'`` or ``'test'``).

    A protocol error, a checkpoint that does not fit the model and a non-finite loss, weight
    or prediction exit with their message (they name the key, file, iteration or episode),
    not a traceback.
    """
    from ..models.utils.state_check import CheckpointMismatchError
    runner = build_runner(cfg)
    try:
        getattr(runner, stage)()
    except (ProtocolError, CheckpointMismatchError, NonFiniteError) as err:
        sys.exit(f'error: {err}')
