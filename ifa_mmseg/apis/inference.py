"""Few-shot inference on images outside any dataset: one support set, many queries."""
import copy
import os
import warnings
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from torch import Tensor

from ifa_mmseg.datasets.transforms import LoadBinaryMask, LoadRGBImageFromFile
from ifa_mmseg.datasets.transforms.formatting import image_tensor
from ifa_mmseg.datasets.transforms.loading import MASK_RULE, binary_mask, open_image

ImageInput = Union[str, os.PathLike, np.ndarray]


@dataclass
class SupportSet:
    """One support set, loaded and encoded once and shared by every query predicted with it.

    Attributes:
        names: the file path (or ``'support image #i'`` for an array) of each support image.
        imgs: uint8 [K, 3, H, W] RGB support images at the model's input size.
        masks: uint8 [K, H, W] {0, 1} masks at the model's input size.
        prototypes: foreground and background prototypes, [1, C, 1, 1] each.
    """
    names: List[str]
    imgs: Tensor
    masks: Tensor
    prototypes: Tuple[Tensor, Tensor]


def _is_path(src: ImageInput) -> bool:
    return isinstance(src, (str, os.PathLike))


def _as_list(inputs: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    """One image (a path or an [H, W, C] array) or a sequence of them -> a list."""
    return [inputs] if _is_path(inputs) or isinstance(inputs, np.ndarray) else list(inputs)


def _episode_pipeline(cfg: Config) -> List[dict]:
    """The per-image pipeline of the config's test dataset (its training dataset for source configs)."""
    loader = cfg.get('test_dataloader') or cfg.get('train_dataloader')
    dataset = loader.get('dataset') if loader else None
    while dataset is not None and 'pipeline' not in dataset:  # dataset wrappers (IFAAdaptationDataset)
        dataset = dataset.get('dataset')
    if dataset is None:
        raise ValueError('the config has no test_dataloader (or train_dataloader) dataset with a pipeline; '
                         'inference takes its image preprocessing from there')
    return dataset['pipeline']


class FewShotInferencer:
    """Segment query images with an IFA model, given K support images and their masks.

    Preprocessing is the config's dataset pipeline: images are decoded with PIL to RGB,
    masks are binarised by the rule of the datasets
    (:func:`~ifa_mmseg.datasets.transforms.loading.binary_mask`, with the threshold of the
    pipeline's ``LoadBinaryMask``, 128 by default), then the pipeline's remaining
    transforms (``FewShotResize``: 400x400 PIL bilinear for images, PyTorch nearest for
    masks) and the model's data preprocessor (normalisation) apply. Predictions are
    resized back to each query's original size.

    The support set's backbone features are computed once and pooled into prototypes
    (:meth:`IFASegmentor.encode_support`); queries are batched against them.

    Inputs are file paths or uint8 RGB arrays [H, W, 3]. Masks are paths or arrays: bool
    [H, W], integer [H, W] (0/1, or grey levels 0-255) or uint8 colour [H, W, 3 or 4].
    Palette masks: every index but 0 is foreground; masks holding only 0 and 1: 1 is
    foreground; other masks are read as grey (``convert('L')``, 16-bit scaled to 0-255)
    and thresholded. A mask must have the size of its image; one with non-zero pixels
    but no foreground under this rule is an error. An empty support mask among others
    gives a warning and prediction goes on; a support set without any foreground is an
    error.

    Example::

        inferencer = FewShotInferencer('configs/ifa/deepglobe_1shot.py', 'epoch_20.pth')
        results = inferencer(['q1.jpg', 'q2.jpg'], ['s.jpg'], ['s_mask.png'], batch_size=2)
        # or keep one encoded support set for many calls
        supports = inferencer.load_supports(['s.jpg'], ['s_mask.png'])
        for result in inferencer.predict(query_paths, supports, batch_size=8, return_prob=True):
            ...

    Args:
        config: config file or :class:`Config` (model and dataset pipeline).
        checkpoint: segmentor checkpoint (all weights are loaded strictly).
        device: torch device; CUDA when available by default.
        cfg_options: overrides merged into the config, e.g.
            ``{'test_dataloader.dataset.pipeline.2.scale': (64, 64)}``.
    """

    def __init__(self, config: Union[str, Config], checkpoint: str, device: Optional[str] = None,
                 cfg_options: Optional[dict] = None) -> None:
        cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        self.cfg = cfg
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')

        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.init_cfg = None  # every weight comes from the checkpoint
        model_cfg.test_cfg = dict(model_cfg.get('test_cfg') or {}, resize_to_original=True)
        self.model = MODELS.build(model_cfg)
        load_checkpoint(self.model, checkpoint, map_location='cpu', strict=True)
        self.model.to(self.device).eval()

        transforms = [TRANSFORMS.build(t) for t in _episode_pipeline(cfg)]
        mask_loaders = [t for t in transforms if isinstance(t, LoadBinaryMask)]
        self.threshold = mask_loaders[0].threshold if mask_loaders else 128
        self.load_image = LoadRGBImageFromFile()
        # inputs are decoded here (arrays have no file to load), so only the later steps run
        self.pipeline = Compose([t for t in transforms if not isinstance(t, (LoadRGBImageFromFile, LoadBinaryMask))])

    # ------------------------------------------------------------------ decoding and checks
    def _read_image(self, src: ImageInput, name: str) -> np.ndarray:
        """A path or array -> uint8 [H, W, 3] RGB, as the dataset pipeline decodes it."""
        if _is_path(src):
            return self.load_image(dict(img_path=os.fspath(src)))['img']
        img = np.asarray(src)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'{name}: an image array must be uint8 RGB [H, W, 3], '
                             f'got {img.dtype} {list(img.shape)}')
        return img

    def _read_mask(self, src: ImageInput, name: str, image_name: str, image_shape: Tuple[int, ...]) -> np.ndarray:
        """A mask path or array -> uint8 [H, W] {0, 1} by the datasets' rule; refuses a size unlike the image's."""
        fg = binary_mask(open_image(os.fspath(src)) if _is_path(src) else np.asarray(src), self.threshold, name)
        if fg.shape != tuple(image_shape[:2]):
            raise ValueError(f'{name}: the mask is {fg.shape[1]}x{fg.shape[0]} (w x h) but its image '
                             f'{image_name} is {image_shape[1]}x{image_shape[0]}')
        return fg.astype(np.uint8)

    def _prepare(self, img: np.ndarray, name: str, mask: Optional[np.ndarray] = None) -> dict:
        """Run the pipeline's transforms after loading (the resize) on one decoded image and mask."""
        results = dict(img=img, img_path=name, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        if mask is not None:
            results.update(gt_seg_map=mask, seg_map_path=name, seg_fields=['gt_seg_map'])
        return self.pipeline(results)

    def _normalise(self, imgs: Sequence[Tensor]) -> Tensor:
        """uint8 [3, H, W] images of one size -> normalised float [N, 3, H, W] on the model's device."""
        preprocessor = self.model.data_preprocessor
        return preprocessor._normalize(preprocessor.cast_data(list(imgs)))

    # ------------------------------------------------------------------ public API
    def load_supports(self, images: Sequence[ImageInput], masks: Sequence[ImageInput]) -> SupportSet:
        """Decode, check, resize and encode a support set (one backbone pass over its K images).

        Raises:
            ValueError: unequal numbers of images and masks, a mask not the size of its
                image, with non-zero pixels but no foreground (``EmptyMaskError``) or an
                unsupported array, no foreground in any support mask, an image array that
                is not uint8 RGB.
            UnreadableFileError: a file that cannot be read or decoded.
        """
        images, masks = _as_list(images), _as_list(masks)
        names = [os.fspath(s) if _is_path(s) else f'support image #{i}' for i, s in enumerate(images)]
        mask_names = [os.fspath(s) if _is_path(s) else f'support mask #{i}' for i, s in enumerate(masks)]
        if len(images) != len(masks) or not images:
            raise ValueError(f'every support image needs one mask: got {len(images)} images {names} '
                             f'and {len(masks)} masks {mask_names}')
        prepared = []
        for src, mask_src, name, mask_name in zip(images, masks, names, mask_names):
            img = self._read_image(src, name)
            mask = self._read_mask(mask_src, mask_name, name, img.shape)
            prepared.append(self._prepare(img, name, mask))
        empty = [mask_name for res, mask_name in zip(prepared, mask_names) if not res['gt_seg_map'].any()]
        if len(empty) == len(prepared):
            raise ValueError(f'no support mask has a foreground pixel at the model input size ({", ".join(empty)}); '
                             f'a prediction would have nothing to look for ({MASK_RULE}, threshold {self.threshold})')
        for mask_name in empty:
            warnings.warn(f'{mask_name}: the support mask has no foreground pixel at the model input size; '
                          'predicting with it anyway')
        imgs = torch.stack([image_tensor(r['img']) for r in prepared])
        support_masks = torch.from_numpy(np.stack([r['gt_seg_map'] for r in prepared]))
        with torch.no_grad():
            prototypes = self.model.encode_support(self._normalise(imgs), support_masks.to(self.device))
        return SupportSet(names, imgs, support_masks, prototypes)

    def check_queries(self, queries: Union[ImageInput, Sequence[ImageInput]]) -> List[str]:
        """Decode every query once, so that a bad one stops the run before any prediction.

        Returns:
            The query names: file paths, or ``'query #i'`` for arrays.
        """
        names = []
        for i, src in enumerate(_as_list(queries)):
            name = os.fspath(src) if _is_path(src) else f'query #{i}'
            if _is_path(src):
                open_image(name)
            else:
                self._read_image(src, name)
            names.append(name)
        return names

    def predict(self, queries: Union[ImageInput, Sequence[ImageInput]], supports: SupportSet,
                batch_size: int = 1, return_prob: bool = False) -> Iterator[Dict]:
        """Check every query now, then predict them batch by batch as the iterator is consumed.

        Yields, per query in input order, a dict with ``name``, ``img`` (the decoded query,
        uint8 [H, W, 3] RGB), ``mask`` (uint8 [H, W] {0, 1} at the query's original size)
        and, with ``return_prob``, ``prob`` (float32 [H, W] foreground probability).
        """
        queries = _as_list(queries)
        names = self.check_queries(queries)
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        return self._predict_batches(queries, names, supports, batch_size, return_prob)

    def _predict_batches(self, queries: List[ImageInput], names: List[str], supports: SupportSet,
                         batch_size: int, return_prob: bool) -> Iterator[Dict]:
        for start in range(0, len(queries), batch_size):
            chunk = range(start, min(start + batch_size, len(queries)))
            originals = [self._read_image(queries[i], names[i]) for i in chunk]
            prepared = [self._prepare(img, names[i]) for img, i in zip(originals, chunk)]
            samples = [SegDataSample(metainfo=dict(img_path=names[i], ori_shape=img.shape[:2]))
                       for img, i in zip(originals, chunk)]
            with torch.no_grad():
                inputs = self._normalise([image_tensor(r['img']) for r in prepared])
                samples = self.model.predict_with_support(inputs, supports.prototypes, samples)
            for i, img, sample in zip(chunk, originals, samples):
                out = dict(name=names[i], img=img, mask=sample.pred_sem_seg.data[0].to(torch.uint8).cpu().numpy())
                if return_prob:
                    out['prob'] = sample.seg_logits.data.softmax(0)[1].float().cpu().numpy()
                yield out

    def __call__(self, queries: Union[ImageInput, Sequence[ImageInput]], support_images: Sequence[ImageInput],
                 support_masks: Sequence[ImageInput], batch_size: int = 1,
                 return_prob: bool = False) -> List[Dict]:
        """Predict every query against one support set; see :meth:`predict` for the result dicts."""
        supports = self.load_supports(support_images, support_masks)
        return list(self.predict(queries, supports, batch_size, return_prob))
