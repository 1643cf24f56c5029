"""FewShotLoggerHook: the test metrics file is written by the main process only (mmengine writes it on every rank)."""
from mmengine.hooks import LoggerHook

from ifa_mmseg.engine.hooks import FewShotLoggerHook, logger_hook


def test_only_the_main_process_writes_the_test_metrics(monkeypatch):
    calls = []
    monkeypatch.setattr(LoggerHook, 'after_test_epoch', lambda self, runner, metrics=None: calls.append(runner))
    hook = FewShotLoggerHook()
    for main in (False, True):
        monkeypatch.setattr(logger_hook, 'is_main_process', lambda main=main: main)
        hook.after_test_epoch(f'runner main={main}', {'mIoU': 1.0})
    assert calls == ['runner main=True']


def test_the_configs_use_it(root):
    from mmengine.config import Config
    for path in ('configs/ifa/deepglobe_1shot.py', 'configs/demo/deepglobe.py', 'configs/demo/source.py'):
        assert Config.fromfile(f'{root}/{path}').default_hooks.logger.type == 'FewShotLoggerHook', path
