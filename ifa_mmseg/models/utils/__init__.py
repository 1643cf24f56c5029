from .ckpt_convert import ConversionError, convert_official, detect_format, infer_depth
from .state_check import CheckpointMismatchError, check_loaded_state, non_finite_keys

__all__ = ['ConversionError', 'convert_official', 'detect_format', 'infer_depth', 'CheckpointMismatchError',
           'check_loaded_state', 'non_finite_keys']
