"""Train (source training or IFA adaptation) with an mmengine Runner."""
import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.runner import Runner

from ifa_mmseg.utils import add_common_args, load_config, setup_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an ifa-mmseg model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in the work dir')
    add_common_args(parser)
    return parser.parse_args()


def check_source_checkpoint(cfg: Config) -> None:
    """Stop before building anything when the checkpoint to start from is missing."""
    load_from = cfg.get('load_from')
    if cfg.resume or not load_from or '://' in load_from or osp.isfile(load_from):
        return
    how = (f'train it first: python tools/train.py {cfg.source_config}' if cfg.get('source_config')
           else 'check the path')
    sys.exit(f'checkpoint to start from not found: {load_from}\n{how}, or convert an official checkpoint with '
             'tools/model_converters/ifa_official_to_mmseg.py and pass --cfg-options load_from=PATH')


def place_support_pool(cfg: Config) -> None:
    """The standard IFA support pool is recorded in the work dir unless a file is given."""
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    if (dataset.get('type') == 'IFAAdaptationDataset' and dataset.get('support_pool', 'standard') == 'standard'
            and not dataset.get('pool_file')):
        dataset['pool_file'] = osp.join(cfg.work_dir, 'support_pool.json')


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.resume = args.resume
    check_source_checkpoint(cfg)
    place_support_pool(cfg)
    setup_distributed(cfg, args.launcher)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
