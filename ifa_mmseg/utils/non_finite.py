"""The non-finite guard's error: a NaN or an inf that would otherwise become a loss, a checkpoint or a metric."""


class NonFiniteError(FloatingPointError):
    """A loss, a weight about to be saved, or a prediction's logits hold NaN or inf.

    Raised by :class:`~ifa_mmseg.engine.hooks.NonFiniteCheckHook` (training),
    :class:`~ifa_mmseg.evaluation.FewShotIoUMetric` (evaluation) and
    :class:`~ifa_mmseg.apis.FewShotInferencer` (inference), each naming where it happened.
    """
