"""Evaluate a checkpoint with an mmengine Runner (all episode seeds of the config)."""
import argparse

from ifa_mmseg.utils import add_common_args, load_config, run_stage, setup_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test an ifa-mmseg model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show-dir', help='draw episode pictures (supports, ground truth, prediction) into this '
                        'folder (SHOW_DIR/seed<S>/episode_<index>.png; a relative path is under the run\'s '
                        'WORK_DIR/<timestamp>/ folder, as in mmseg); the vis backends of the config receive them too')
    parser.add_argument('--num-vis', type=int, default=8,
                        help='episodes drawn per seed (--vis-rule first) or per class and seed (--vis-rule worst)')
    parser.add_argument('--vis-rule', choices=('first', 'worst'), default='first',
                        help='draw the first --num-vis episodes of each seed, or the --num-vis episodes of '
                        'lowest IoU of each class in each seed')
    parser.add_argument('--out', help='also write the predicted mask of every episode of every seed to this .pkl '
                        '(ifa_mmseg.evaluation.unpack_mask reads one)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir is not None:
        cfg.default_hooks = cfg.get('default_hooks') or {}
        cfg.default_hooks['visualization'] = dict(
            type='FewShotVisualizationHook', draw=True, show_dir=args.show_dir, num_episodes=args.num_vis,
            rule=args.vis_rule)
    if args.out is not None:
        dump = dict(type='FewShotDumpResults', out_file_path=args.out)
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dump]
    setup_distributed(cfg, args.launcher)
    run_stage(cfg, 'test')


if __name__ == '__main__':
    main()
