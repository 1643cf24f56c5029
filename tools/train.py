"""Train (source training or IFA adaptation) with an mmengine Runner."""
import argparse

from ifa_mmseg.utils import add_common_args, load_config, run_stage, setup_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an ifa-mmseg model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the newest checkpoint in the work dir (without one: start from load_from)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.resume = args.resume
    setup_distributed(cfg, args.launcher)
    run_stage(cfg, 'train')


if __name__ == '__main__':
    main()
