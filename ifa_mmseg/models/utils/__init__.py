from .ckpt_convert import ConversionError, convert_official, detect_format, infer_depth

__all__ = ['ConversionError', 'convert_official', 'detect_format', 'infer_depth']
