"""Print a config as the runner will build it: its facts and protocol keys resolved.

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...] [--unresolved] [--out FILE]

By default the config is resolved by ``resolve_config`` (what ``FewShotRunner`` does
before it builds anything): dataset roots, shots, episodes and seeds, the official metric's
batch, LR milestones, the adaptation dataset and its support pool, the selection loop and
checkpoint rule, ``load_from``. ``--unresolved`` prints the config as written (with the
overrides), as mmseg's ``tools/misc/print_config.py`` would; that one does not run with
mmcv-lite, and writes ``example.py`` into the current directory. ``--out`` also dumps the
printed config to a file (``.py``, ``.json`` or ``.yaml``).
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the resolved config (what the runner builds)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    parser.add_argument('--unresolved', action='store_true', help='print the config as written, not resolved')
    parser.add_argument('--work-dir', help='the run\'s work dir (it decides e.g. the support pool file)')
    parser.add_argument('--out', help='also dump the printed config to this file')
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Config:
    """The config with the overrides, resolved unless ``--unresolved``."""
    import ifa_mmseg  # noqa: F401  (registers the datasets the resolver inspects)
    from ifa_mmseg.engine.protocol import ProtocolError, resolve_config

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    if not args.unresolved:
        try:
            cfg = resolve_config(cfg)
        except ProtocolError as err:
            raise SystemExit(f'{args.config}: {err}')
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cfg = load(args)
    what = 'as written' if args.unresolved else 'resolved (what the runner builds)'
    print(f'Config {args.config}, {what}:\n{cfg.pretty_text}')
    if args.out:
        cfg.dump(args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
