from .cli import add_common_args, build_runner, enable_amp, load_config, run_stage
from .dist import setup_distributed
from .errors import ConversionError, NonFiniteError, ProtocolError

__all__ = ['add_common_args', 'build_runner', 'enable_amp', 'load_config', 'run_stage', 'setup_distributed',
           'ConversionError', 'NonFiniteError', 'ProtocolError']
