"""The few-shot data sample (one episode's fields, declared once) and a batch of them, stacked once."""
from typing import Dict, Iterable, Optional, Sequence

from mmseg.structures import SegDataSample
from torch import Tensor
from torch.utils.data import default_collate

# every episode: K support images and their masks
SUPPORT_FIELDS = ('support_imgs', 'support_masks')
# per-episode adaptation (adaptation_labels='episode'): V pseudo-queries and their masks
PSEUDO_QUERY_FIELDS = ('adapt_imgs', 'adapt_masks')
EPISODE_FIELDS = SUPPORT_FIELDS + PSEUDO_QUERY_FIELDS
# the image fields of the two pairs, which the data preprocessor normalises
IMAGE_FIELDS = (SUPPORT_FIELDS[0], PSEUDO_QUERY_FIELDS[0])


class FewShotDataSample(SegDataSample):
    """A data structure interface of ifa_mmseg: one episode, a query and its supports.

    Besides :class:`SegDataSample`'s fields (``gt_sem_seg``: the query mask, long [1, H, W];
    ``pred_sem_seg``, ``seg_logits``: set by the segmentor), the episode's fields:

        - ``support_imgs`` (Tensor): the K support images [K, 3, H, W]: uint8 from
          ``PackFewShotInputs``, float32 normalised by ``FewShotSegDataPreProcessor``.
        - ``support_masks`` (Tensor): their binary masks [K, H, W], uint8 from ``PackFewShotInputs``.
        - ``adapt_imgs`` (Tensor): the V pseudo-queries of per-episode adaptation [V, 3, H, W]
          (``adaptation_labels='episode'``): uint8 from ``PackFewShotInputs``, float32 normalised
          by ``FewShotSegDataPreProcessor``.
        - ``adapt_masks`` (Tensor): their binary masks [V, H, W], uint8 from ``PackFewShotInputs``.

    ``PackFewShotInputs`` also sets the metainfo ``support_paths``, ``support_seg_map_paths`` and,
    with pseudo-queries, ``pseudo_query_sources`` (the support each pseudo-query copies).
    ``FewShotInferencer`` gives every query the support set's uint8 ``support_imgs`` and
    ``support_masks``. In a batch (:class:`FewShotSampleList`) each field is a row of the batch's
    tensor. All episodes of a batch share one image size and one K (and V).

    Examples:
        >>> import torch
        >>> from ifa_mmseg.structures import FewShotDataSample
        >>> sample = FewShotDataSample()
        >>> sample.support_imgs = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
        >>> sample.support_masks = torch.ones(1, 4, 4, dtype=torch.uint8)
        >>> assert 'support_imgs' in sample and 'adapt_imgs' not in sample
    """

    @property
    def support_imgs(self) -> Tensor:
        return self._support_imgs

    @support_imgs.setter
    def support_imgs(self, value: Tensor) -> None:
        self.set_field(value, '_support_imgs', dtype=Tensor)

    @support_imgs.deleter
    def support_imgs(self) -> None:
        del self._support_imgs

    @property
    def support_masks(self) -> Tensor:
        return self._support_masks

    @support_masks.setter
    def support_masks(self, value: Tensor) -> None:
        self.set_field(value, '_support_masks', dtype=Tensor)

    @support_masks.deleter
    def support_masks(self) -> None:
        del self._support_masks

    @property
    def adapt_imgs(self) -> Tensor:
        return self._adapt_imgs

    @adapt_imgs.setter
    def adapt_imgs(self, value: Tensor) -> None:
        self.set_field(value, '_adapt_imgs', dtype=Tensor)

    @adapt_imgs.deleter
    def adapt_imgs(self) -> None:
        del self._adapt_imgs

    @property
    def adapt_masks(self) -> Tensor:
        return self._adapt_masks

    @adapt_masks.setter
    def adapt_masks(self, value: Tensor) -> None:
        self.set_field(value, '_adapt_masks', dtype=Tensor)

    @adapt_masks.deleter
    def adapt_masks(self) -> None:
        del self._adapt_masks


def stack_rows(tensors: Sequence[Tensor], what: str, samples: Sequence[SegDataSample]) -> Tensor:
    """``default_collate`` of equal-shaped tensors (inside a DataLoader worker, into shared memory), or an
    error naming the first query whose tensor differs."""
    for tensor, sample in zip(tensors, samples):
        if tensor.shape != tensors[0].shape:
            raise ValueError(f'{what} of {sample.metainfo.get("img_path")} is {tuple(tensor.shape)} but '
                             f'{tuple(tensors[0].shape)} in the first episode of the batch: resize every image '
                             f'to one size and use one shot count per batch')
    return default_collate(tensors)


class FewShotSampleList(list):
    """The data samples of a batch of episodes, with their episode fields stacked once.

    The batch tensors ``support_imgs`` [B, K, 3, H, W], ``support_masks`` [B, K, H, W] and, when
    the samples carry pseudo-queries, ``adapt_imgs`` [B, V, 3, H, W] and ``adapt_masks``
    [B, V, H, W] (``None`` otherwise) are what the model reads; every sample holds its row of
    each as a view (no copy), so that per-episode consumers (metric, visualiser, hooks) read
    the samples as before. ``fewshot_collate`` builds it, ``FewShotSegDataPreProcessor``
    moves and normalises the batch tensors, and ``IFASegmentor`` stacks any other list of
    samples with the same constructor (:meth:`of`).

    Args:
        samples: the episodes' data samples (:class:`FewShotDataSample`, or any
            :class:`SegDataSample` carrying the fields); they are given the rows.
        **batch: the batch tensors, by field name. Without them the samples' own fields are
            stacked: the only place where episode fields are stacked.

    Raises:
        ValueError: a sample lacks a field that the batch has, or its field's shape differs
            from the first episode's (both naming the sample's query), or the batch tensors
            are not ``SUPPORT_FIELDS`` with or without ``PSEUDO_QUERY_FIELDS``, one row per sample.
    """

    def __init__(self, samples: Iterable[SegDataSample] = (), **batch: Tensor) -> None:
        super().__init__(samples)
        self.batch: Dict[str, Tensor] = batch or self._stack()
        expected = set(SUPPORT_FIELDS) | (set(PSEUDO_QUERY_FIELDS) if PSEUDO_QUERY_FIELDS[0] in self.batch else set())
        if self and (set(self.batch) != expected or any(len(t) != len(self) for t in self.batch.values())):
            raise ValueError(f'a batch of {len(self)} episodes takes {sorted(expected)} with one row per episode, '
                             f'got {({k: tuple(v.shape) for k, v in self.batch.items()})}')
        self._rows = {field: tensor.unbind(0) for field, tensor in self.batch.items()}
        for field, rows in self._rows.items():
            for sample, row in zip(self, rows):
                setattr(sample, field, row)

    def _stack(self) -> Dict[str, Tensor]:
        """The samples' fields stacked: the support pair, and the pseudo-query pair if any sample carries it."""
        if not self:
            return {}
        fields = SUPPORT_FIELDS + (PSEUDO_QUERY_FIELDS if any(PSEUDO_QUERY_FIELDS[0] in s for s in self) else ())
        for field in fields:
            for sample in self:
                if field not in sample:
                    raise ValueError(f'the data sample of {sample.metainfo.get("img_path")} has no {field}: the '
                                     f'episodes of a batch carry {", ".join(fields)} (pack episodes with '
                                     'PackFewShotInputs)')
        return {field: stack_rows([getattr(s, field) for s in self], field, self) for field in fields}

    @classmethod
    def of(cls, samples: Sequence[SegDataSample]) -> 'FewShotSampleList':
        """``samples`` themselves if they are a batch whose samples still hold its rows, else a batch stacked
        from them (a plain list: mmengine's ``pseudo_collate``, samples built by hand; or a batch whose samples
        were given other tensors since)."""
        if isinstance(samples, cls) and all(
                len(rows) == len(samples) and all(getattr(s, field, None) is row for s, row in zip(samples, rows))
                for field, rows in samples._rows.items()):
            return samples
        return cls(samples)

    def to(self, *args, **kwargs) -> 'FewShotSampleList':
        """The batch on a device, as :meth:`BaseDataElement.to` moves one sample: each batch tensor moved once,
        the samples' other tensors one by one, their episode fields rows of the moved batch tensors."""
        src = self.of(self)
        batch = {field: tensor.to(*args, **kwargs) for field, tensor in src.batch.items()}
        samples = []
        for sample in src:
            moved = sample.new()
            moved.set_data({k: v.to(*args, **kwargs) for k, v in sample.items() if k not in batch and hasattr(v, 'to')})
            samples.append(moved)
        return type(self)(samples, **batch)

    @property
    def support_imgs(self) -> Optional[Tensor]:
        return self.batch.get('support_imgs')

    @property
    def support_masks(self) -> Optional[Tensor]:
        return self.batch.get('support_masks')

    @property
    def adapt_imgs(self) -> Optional[Tensor]:
        return self.batch.get('adapt_imgs')

    @property
    def adapt_masks(self) -> Optional[Tensor]:
        return self.batch.get('adapt_masks')
