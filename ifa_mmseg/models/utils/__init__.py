from .ckpt_convert import (ConversionError, convert_hypercorr, convert_hypercorr_file, convert_official, detect_format,
                           detect_hypercorr_model, hypercorr_key, hypercorr_target, infer_depth)
from .state_check import CheckpointMismatchError, check_loaded_state, non_finite_keys

__all__ = ['ConversionError', 'convert_hypercorr', 'convert_hypercorr_file', 'convert_official', 'detect_format',
           'detect_hypercorr_model', 'hypercorr_key', 'hypercorr_target', 'infer_depth', 'CheckpointMismatchError',
           'check_loaded_state', 'non_finite_keys']
