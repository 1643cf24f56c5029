"""FLOPs per episode of a config's model, at the config's input size and shot.

    python tools/analysis_tools/get_flops.py CONFIG [--shot K] [--size S] [--modes eval ifa] [--cfg-options k=v]

Counts one episode (B = 1) of our model of CONFIG with ``torch.utils.flop_counter`` (matrix
products, convolutions, attention), split into the backbone (the query and the K supports,
K + 1 images) and the rest (the parameter-free head; in training also the loss, backward and
SGD step). The counting is ``tools/analysis_tools/benchmark.py``'s
(:func:`ifa_mmseg.analysis.benchmark.episode_flops`), on its episodes and recipe weights; the
head's share depends on the episodes (SSP's pixel selections), the backbone's does not. The
shot is the resolved config's ``shot`` and the size its test pipeline's ``FewShotResize`` scale,
unless given.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

from ifa_mmseg.analysis.benchmark import MODES, episode_flops
from ifa_mmseg.engine.protocol import ProtocolError, episode_pipeline_of, resolve_config


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='FLOPs per episode (backbone / head) of a config\'s model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shot', type=int, help="K (default: the config's shot)")
    parser.add_argument('--size', type=int, help="image side (default: the config's test FewShotResize scale)")
    parser.add_argument('--modes', nargs='+', choices=MODES, default=['eval'],
                        help='eval: inference forward; source / ifa: a training step with that loss')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    return parser.parse_args(argv)


def input_size(cfg: Config) -> int:
    """The side of the evaluated pipeline's ``FewShotResize`` (400 in the official pipeline)."""
    for transform in episode_pipeline_of(cfg):
        if transform.get('type') == 'FewShotResize':
            h, w = transform['scale']
            if h != w:
                raise SystemExit(f'FewShotResize scale {(h, w)} is not square: pass --size')
            return int(h)
    raise SystemExit('the config has no test pipeline with FewShotResize: pass --size')


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mmengine.registry import init_default_scope

    import ifa_mmseg  # noqa: F401  (registers the model)
    args = parse_args(argv)
    init_default_scope('mmseg')
    try:
        cfg = resolve_config(args.config, args.cfg_options)
    except ProtocolError as err:
        raise SystemExit(f'{args.config}: {err}')
    shot = args.shot or cfg.shot
    size = args.size or input_size(cfg)
    print(f'{args.config}: {cfg.model.backbone.type} backbone, {shot}-shot, {size}x{size} input, '
          'one episode (B=1)')
    print(f'{"mode":<7} {"backbone GFLOPs":>16} {"head GFLOPs":>12} {"total GFLOPs":>13}')
    for mode in args.modes:
        flops = episode_flops(os.path.abspath(args.config), shot, size, mode, cfg_options=args.cfg_options)
        total = flops['backbone'] + flops['head']
        print(f'{mode:<7} {flops["backbone"] / 1e9:>16.3f} {flops["head"] / 1e9:>12.3f} {total / 1e9:>13.3f}')
    print(f'backbone: the query and {shot} support image(s); head: the rest of the step. Training modes '
          'count forward and backward, the head also the loss and the SGD step')
    return 0


if __name__ == '__main__':
    sys.exit(main())
