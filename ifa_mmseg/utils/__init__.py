from .cli import add_common_args, build_runner, enable_amp, load_config
from .dist import setup_distributed

__all__ = ['add_common_args', 'build_runner', 'enable_amp', 'load_config', 'setup_distributed']
