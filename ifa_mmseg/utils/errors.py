"""The package's own error types, defined once and raised by several layers (resolver, tools, converters)."""


class ProtocolError(ValueError):
    """A config whose facts or protocol keys are missing, invalid or contradicted; the message names the keys."""


class NonFiniteError(FloatingPointError):
    """A loss, a weight about to be saved, or a prediction's logits hold NaN or inf.

    Raised by :class:`~ifa_mmseg.engine.hooks.NonFiniteCheckHook` (training),
    :class:`~ifa_mmseg.evaluation.FewShotIoUMetric` (evaluation) and
    :class:`~ifa_mmseg.apis.FewShotInferencer` (inference), each naming where it happened.
    """


class ConversionError(ValueError):
    """A file to convert (official weights, a DINOv2 release, a dataset download) is not what the converter
    expects; the message names the key or the files."""
