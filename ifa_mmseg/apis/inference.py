"""Few-shot inference on images outside any dataset: one support set, many queries."""
import copy
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import scandir
from mmseg.apis import init_model as mmseg_init_model
from mmseg.registry import MODELS, TRANSFORMS, VISUALIZERS
from torch import Tensor

from ifa_mmseg.datasets.pseudo_query import draw_pseudo_queries, recipe_of, split_at_mask_loading
from ifa_mmseg.datasets.transforms import LoadBinaryMask, LoadRGBImageFromFile
from ifa_mmseg.datasets.transforms.formatting import image_tensor
from ifa_mmseg.datasets.transforms.loading import MASK_RULE, binary_mask, open_image
from ifa_mmseg.engine.protocol import evaluated_dataset, resolve_config
from ifa_mmseg.models.adaptation import EpisodeAdapter, Params
from ifa_mmseg.models.utils.state_check import naming_file
from ifa_mmseg.structures import FewShotDataSample
from ifa_mmseg.utils.errors import NonFiniteError
from ifa_mmseg.visualization import FewShotLocalVisualizer

ImageInput = Union[str, os.PathLike, np.ndarray]
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# What an output folder holds (the inferencer's ``out_dir``, tools/infer.py's ``--out``): subfolder -> file
# extension. ``vis`` and ``pred`` are MMSegInferencer's, so that mmseg users find what they know; ``prob``
# (foreground probabilities) is written by tools/infer.py --save-prob.
OUTPUT_LAYOUT = dict(pred='.png', vis='.png', prob='.npy')


@dataclass
class SupportSet:
    """One support set, loaded and encoded once and shared by every query predicted with it.

    Attributes:
        names: the file path (or ``'support image #i'`` for an array) of each support image.
        imgs: uint8 [K, 3, H, W] RGB support images at the model's input size.
        masks: uint8 [K, H, W] {0, 1} masks at the model's input size.
        prototypes: foreground and background prototypes, [1, C, 1, 1] each (under ``params``
            when adapted).
        ori_shapes: each support image's original (h, w).
        params: the weights adapted to this support set (name -> [1, *shape]), which
            replace the model's for its prototypes and queries; ``None`` without adaptation.
        adapt_steps: the adaptation steps that gave ``params`` (0: none).
    """
    names: List[str]
    imgs: Tensor
    masks: Tensor
    prototypes: Tuple[Tensor, Tensor]
    ori_shapes: List[Tuple[int, int]] = field(default_factory=list)
    params: Optional[Params] = None
    adapt_steps: int = 0


def _is_path(src: ImageInput) -> bool:
    return isinstance(src, (str, os.PathLike))


def _as_list(inputs: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    """One image (a path or an [H, W, C] array) or a sequence of them -> a list."""
    return [inputs] if _is_path(inputs) or isinstance(inputs, np.ndarray) else list(inputs)


def _query_name(src: ImageInput, index: int) -> str:
    return os.fspath(src) if _is_path(src) else f'query #{index}'


def _output_stem(name: str, index: int) -> str:
    """Output file stem of a query: its file stem, or ``query_<index>`` for an array."""
    return f'query_{index:05d}' if name.startswith('query #') else osp.splitext(osp.basename(name))[0]


def list_queries(inputs: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    """One image (path or array), a folder or a sequence of them -> the queries, a folder giving its images
    (sorted, not recursive), so that a folder of queries needs no listing by hand."""
    queries: List[ImageInput] = []
    for src in _as_list(inputs):
        if not (_is_path(src) and osp.isdir(src)):
            queries.append(src)  # checked, with the others, by FewShotInferencer.check_queries
            continue
        found = sorted(scandir(os.fspath(src), IMG_EXTENSIONS, case_sensitive=False))
        if not found:
            raise ValueError(f'query folder {os.fspath(src)} holds no image ({", ".join(IMG_EXTENSIONS)})')
        queries += [osp.join(os.fspath(src), f) for f in found]
    return queries


def output_stems(queries: Sequence[ImageInput]) -> List[str]:
    """Each query's output file stem (:func:`_output_stem`); refused when two share one, as the second query's
    files would overwrite the first's."""
    seen: Dict[str, str] = {}
    for i, src in enumerate(queries):
        name = _query_name(src, i)
        stem = _output_stem(name, i)
        if stem in seen:
            raise ValueError(f'queries {seen[stem]} and {name} would both be written as {stem}.png: rename one')
        seen[stem] = name
    return list(seen)


def output_path(out_dir: str, kind: str, stem: str) -> str:
    """Where the ``kind`` output (a key of :data:`OUTPUT_LAYOUT`) of query ``stem`` goes under ``out_dir``."""
    return osp.join(out_dir, kind, stem + OUTPUT_LAYOUT[kind])


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cuda:0',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """mmseg's :func:`mmseg.apis.init_model` on the resolved config (:func:`~ifa_mmseg.engine.resolve_config`),
    so the model is the one the runner builds (e.g. adapting per episode with ``adaptation_labels='episode'``)."""
    return mmseg_init_model(resolve_config(config, cfg_options), checkpoint, device)


class FewShotInferencer(BaseInferencer):
    """Segment query images with an IFA model, given K support images and their masks.

    An mmengine :class:`~mmengine.infer.BaseInferencer` whose call takes a support set
    besides the queries: it is decoded, checked and encoded once (:meth:`load_supports`),
    then the queries are batched against it (``preprocess`` -> ``forward`` ->
    ``visualize`` -> ``postprocess``, as mmengine's inferencers).

    Preprocessing is the config's dataset pipeline: images are decoded with PIL to RGB,
    masks are binarised by the rule of the datasets
    (:func:`~ifa_mmseg.datasets.transforms.loading.binary_mask`, with the threshold of the
    pipeline's ``LoadBinaryMask``, 128 by default), then the pipeline's remaining
    transforms (``FewShotResize``: 400x400 PIL bilinear for images, PyTorch nearest for
    masks) and the model's data preprocessor (normalisation) apply. Predictions are
    resized back to each query's original size.

    With ``adapt_steps=N`` the support set also adapts a copy of the model's weights
    before its queries are predicted, as ``adaptation_labels='episode'`` adapts each
    test episode: N steps of the config's ``episode_adaptation`` (its other settings)
    on pseudo-queries, augmented copies of the supports (the IFA augmentations of the
    config's test dataset, at the original resolution, then the resize). The model's
    own weights do not change.

    Inputs are file paths (or a folder, whose images are all queries) or uint8 RGB arrays
    [H, W, 3]. Masks are paths or arrays: bool [H, W], integer [H, W] (0/1, or grey levels
    0-255) or uint8 colour [H, W, 3 or 4]. Palette masks: every index but 0 is foreground;
    masks holding only 0 and 1: 1 is foreground; other masks are read as grey
    (``convert('L')``, 16-bit scaled to 0-255) and thresholded. A mask must have the size
    of its image; one with non-zero pixels but no foreground under this rule is an error.
    An empty support mask among others gives a warning and prediction goes on; a support
    set without any foreground is an error. Every query is decoded before the first
    prediction, and nothing is written before every query is predicted.

    Example::

        inferencer = FewShotInferencer('configs/ifa/deepglobe_1shot.py', 'epoch_20.pth')
        out = inferencer(['q1.jpg', 'q2.jpg'], support_images=['s.jpg'], support_masks=['s_mask.png'],
                         batch_size=2, out_dir='outputs')  # outputs/vis/q1.png, outputs/pred/q1.png, ...
        out['predictions'][0]['mask']
        # or keep one encoded support set for many calls, here adapted to it by 10 steps first
        supports = inferencer.load_supports(['s.jpg'], ['s_mask.png'], adapt_steps=10)
        out = inferencer(query_paths, supports=supports, return_prob=True)
        for result in inferencer.predict(query_paths, supports, batch_size=8):  # streamed
            ...

    Args:
        model: config file or :class:`Config` (model and dataset pipeline), resolved as the runner
            resolves it (:func:`~ifa_mmseg.engine.resolve_config`).
        weights: segmentor checkpoint; one that does not fit the model is refused unless the config sets
            ``model.strict_load=False``.
        device: torch device; CUDA when available by default.
        cfg_options: overrides merged into the config, e.g.
            ``{'test_dataloader.dataset.pipeline.2.scale': (64, 64)}``.
        scope: registry scope.
        show_progress: a progress bar over the batches of each call.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = {'supports'}
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time', 'img_out_dir', 'opacity', 'title'}
    postprocess_kwargs: set = {'pred_out_dir', 'return_prob'}

    def __init__(self, model: Union[str, Config], weights: str, device: Optional[str] = None,
                 cfg_options: Optional[dict] = None, scope: Optional[str] = 'mmseg',
                 show_progress: bool = False) -> None:
        cfg = resolve_config(model, cfg_options)
        init_default_scope(cfg.get('default_scope', scope or 'mmseg'))
        super().__init__(cfg, weights, device or ('cuda' if torch.cuda.is_available() else 'cpu'), scope,
                         show_progress)
        self.device = next(self.model.parameters()).device
        if getattr(self.model, 'dataset_meta', None):
            self.visualizer.dataset_meta = dict(self.model.dataset_meta)

    # ------------------------------------------------------------------ BaseInferencer's construction steps
    def _init_model(self, cfg: Config, weights: Optional[str], device: str = 'cpu') -> torch.nn.Module:
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.init_cfg = None  # every weight comes from the checkpoint
        model_cfg.pop('pretrained', None)
        model_cfg.test_cfg = dict(model_cfg.get('test_cfg') or {}, resize_to_original=True)
        model = MODELS.build(model_cfg)
        with naming_file(weights):
            checkpoint = load_checkpoint(model, weights, map_location='cpu')  # the model's strict_load decides
        meta = checkpoint.get('meta') or {} if isinstance(checkpoint, dict) else {}
        if meta.get('dataset_meta'):
            model.dataset_meta = meta['dataset_meta']
        model.cfg = cfg
        return model.to(device).eval()

    def _init_pipeline(self, cfg: Config) -> Compose:
        dataset = evaluated_dataset(cfg)
        loading, after_load, pseudo_query = split_at_mask_loading(dataset['pipeline'], recipe_of(dataset))
        mask_loaders = [t for t in map(TRANSFORMS.build, loading) if isinstance(t, LoadBinaryMask)]
        self.threshold = mask_loaders[0].threshold
        self.load_image = LoadRGBImageFromFile()
        # inputs are decoded here (arrays have no file to load), so only the later steps run; pseudo-queries
        # as a test dataset's adapt_queries: augmented at the original resolution, then the later steps
        self.pseudo_query_pipeline = Compose([TRANSFORMS.build(t) for t in pseudo_query])
        return Compose([TRANSFORMS.build(t) for t in after_load])

    def _init_collate(self, cfg: Config):
        return pseudo_collate

    def _init_visualizer(self, cfg: Config) -> FewShotLocalVisualizer:
        """The config's visualizer when it is a :class:`FewShotLocalVisualizer`, else a default one; no backends."""
        vis_cfg = dict(cfg.get('visualizer') or {})
        vis_type = vis_cfg.get('type')
        vis_cls = VISUALIZERS.get(vis_type) if isinstance(vis_type, str) else vis_type
        if not (isinstance(vis_cls, type) and issubclass(vis_cls, FewShotLocalVisualizer)):
            vis_cfg = dict(type=FewShotLocalVisualizer)
        vis_cfg.pop('vis_backends', None)
        vis_cfg.pop('save_dir', None)
        vis_cfg['name'] = f'fewshot_inferencer-{datetime.now().timestamp()}-{id(self)}'
        return VISUALIZERS.build(vis_cfg)

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

    @staticmethod
    def _loaded(img: np.ndarray, name: str, mask: Optional[np.ndarray] = None) -> dict:
        """One decoded image and mask as the pipeline's results right after loading (original size)."""
        results = dict(img=img, img_path=name, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        if mask is not None:
            results.update(gt_seg_map=mask, seg_map_path=name, seg_fields=['gt_seg_map'])
        return results

    def _prepare(self, img: np.ndarray, name: str, mask: Optional[np.ndarray] = None) -> dict:
        """Run the pipeline's transforms after loading (the resize) on one decoded image and mask."""
        return self.pipeline(self._loaded(img, name, mask))

    def _normalise(self, imgs: Sequence[Tensor]) -> Tensor:
        """uint8 [3, H, W] images of one size -> normalised float [N, 3, H, W] on the model's device."""
        preprocessor = self.model.data_preprocessor
        return preprocessor._normalize(preprocessor.cast_data(list(imgs)))

    def _inputs_to_list(self, inputs) -> list:
        """mmengine's hook, as tools/infer.py lists queries: :func:`list_queries`."""
        return list_queries(inputs)

    # ------------------------------------------------------------------ supports
    def load_supports(self, images: Sequence[ImageInput], masks: Sequence[ImageInput],
                      adapt_steps: Optional[int] = None, seed: int = 0) -> SupportSet:
        """Decode, check, resize and encode a support set (one backbone pass over its K images).

        Args:
            images, masks: the K support images and their masks.
            adapt_steps: with N > 0, first adapt a copy of the model's weights to this support
                set (:class:`~ifa_mmseg.models.EpisodeAdapter`: N steps, the config's other
                ``episode_adaptation`` settings, its recipe's for the keys it does not state) on
                the adapter's ``num_queries`` pseudo-queries; ``None`` or 0: no adaptation.
            seed: the pseudo-queries' draws (a test dataset draws episode ``i``'s with
                ``item_seed(dataset.seed, i)``, which gives its pseudo-queries here).

        Raises:
            ValueError: unequal numbers of images and masks, a mask not the size of its
                image, with non-zero pixels but no foreground (``EmptyMaskError``) or an
                unsupported array, no foreground in any support mask, an image array that
                is not uint8 RGB, ``adapt_steps`` or the config's ``episode_adaptation``
                not valid settings of :class:`~ifa_mmseg.models.EpisodeAdapter`.
            UnreadableFileError: a file that cannot be read or decoded.
        """
        adapter = self._episode_adapter(adapt_steps) if adapt_steps else None  # bad settings stop before decoding
        images, masks = _as_list(images), _as_list(masks)
        names = [os.fspath(s) if _is_path(s) else f'support image #{i}' for i, s in enumerate(images)]
        mask_names = [os.fspath(s) if _is_path(s) else f'support mask #{i}' for i, s in enumerate(masks)]
        if len(images) != len(masks) or not images:
            raise ValueError(f'every support image needs one mask: got {len(images)} images {names} '
                             f'and {len(masks)} masks {mask_names}')
        loaded, shapes = [], []
        for src, mask_src, name, mask_name in zip(images, masks, names, mask_names):
            img = self._read_image(src, name)
            loaded.append(self._loaded(img, name, self._read_mask(mask_src, mask_name, name, img.shape)))
            shapes.append(tuple(img.shape[:2]))
        # the supports and their pseudo-queries start from the same decoded results, as in a test dataset
        prepared = [self.pipeline(copy.deepcopy(r)) for r in loaded]
        empty = [mask_name for res, mask_name in zip(prepared, mask_names) if not res['gt_seg_map'].any()]
        if len(empty) == len(prepared):
            raise ValueError(f'no support mask has a foreground pixel at the model input size ({", ".join(empty)}); '
                             f'a prediction would have nothing to look for ({MASK_RULE}, threshold {self.threshold})')
        for mask_name in empty:
            warnings.warn(f'{mask_name}: the support mask has no foreground pixel at the model input size; '
                          'predicting with it anyway')
        imgs = torch.stack([image_tensor(r['img']) for r in prepared])
        support_masks = torch.from_numpy(np.stack([r['gt_seg_map'] for r in prepared]))
        normalised, device_masks = self._normalise(imgs), support_masks.to(self.device)
        params = None
        if adapter is not None:
            queries, query_masks = self._pseudo_queries(loaded, adapter.num_queries, seed)
            params = adapter.adapt(self.model, normalised[None], device_masks[None], self._normalise(queries)[None],
                                   query_masks.to(self.device)[None])
        with torch.no_grad():
            prototypes = self.model.encode_support(normalised, device_masks, params=params)
        if not all(torch.isfinite(p).all() for p in prototypes):  # once per support set
            why = (f'adapting to them diverged ({adapter.steps} steps, optimizer {adapter.optimizer}): lower the '
                   "learning rate (the config's episode_adaptation.optimizer.lr)" if adapter is not None
                   else 'check the images')
            raise NonFiniteError(f'the prototypes of the supports {names} are NaN or inf: {why}')
        return SupportSet(names, imgs, support_masks, prototypes, shapes, params, adapter.steps if adapter else 0)

    def _episode_adapter(self, steps: int) -> EpisodeAdapter:
        """The model's adapter (:meth:`IFASegmentor.set_episode_adaptation`) with ``steps`` steps and the config's
        other ``episode_adaptation`` settings."""
        settings = dict(self.cfg.get('episode_adaptation') or {})
        try:
            self.model.set_episode_adaptation(dict(settings, steps=steps))
        except (TypeError, ValueError) as err:
            raise ValueError(f'adapt_steps={steps!r} with the config\'s episode_adaptation={settings}: {err}') from err
        return self.model.episode_adapter

    def _pseudo_queries(self, loaded: Sequence[dict], num: int, seed: int) -> Tuple[Tensor, Tensor]:
        """``num`` pseudo-queries of a support set, drawn as a test dataset's ``adapt_queries``.

        Args:
            loaded: the supports' results right after loading (:meth:`_loaded`), at the original size.
            num: pseudo-queries to draw.
            seed: the draws' seed (:func:`~ifa_mmseg.datasets.pseudo_query.draw_pseudo_queries`).

        Returns:
            uint8 [num, 3, H, W] images and uint8 [num, H, W] {0, 1} masks at the model's input size.
        """
        pseudo, _ = draw_pseudo_queries(loaded, self.pseudo_query_pipeline, num, seed)
        return (torch.stack([image_tensor(r['img']) for r in pseudo]),
                torch.from_numpy(np.stack([r['gt_seg_map'] for r in pseudo])))

    def check_queries(self, queries: Union[ImageInput, Sequence[ImageInput]]) -> List[str]:
        """Decode every query once, so that a bad one stops the run before any prediction.

        Returns:
            The query names: file paths, or ``'query #i'`` for arrays.
        """
        names = []
        for i, src in enumerate(_as_list(queries)):
            name = _query_name(src, i)
            if _is_path(src):
                open_image(name)
            else:
                self._read_image(src, name)
            names.append(name)
        return names

    # ------------------------------------------------------------------ mmengine's four steps
    def preprocess(self, inputs: List[ImageInput], batch_size: int = 1, **kwargs) -> Iterator[dict]:
        """Check every query now; return an iterator of batches, decoded and resized as it is consumed.

        A batch is ``dict(inputs=[uint8 [3, h, w]], data_samples=[FewShotDataSample], ori_imgs=[uint8
        [H, W, 3]])``; each sample's metainfo has ``img_path`` (the query's name), ``ori_shape``
        and ``index`` (its position in ``inputs``).
        """
        names = self.check_queries(inputs)
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        return self._batches(inputs, names, batch_size)

    def _batches(self, inputs: List[ImageInput], names: List[str], batch_size: int) -> Iterator[dict]:
        for start in range(0, len(inputs), batch_size):
            chunk = range(start, min(start + batch_size, len(inputs)))
            originals = [self._read_image(inputs[i], names[i]) for i in chunk]
            prepared = [self._prepare(img, names[i]) for img, i in zip(originals, chunk)]
            samples = [FewShotDataSample(metainfo=dict(img_path=names[i], ori_shape=img.shape[:2], index=i))
                       for img, i in zip(originals, chunk)]
            yield dict(inputs=[image_tensor(r['img']) for r in prepared], ori_imgs=originals, data_samples=samples)

    @torch.no_grad()
    def forward(self, inputs: dict, supports: SupportSet = None, **kwargs) -> List[FewShotDataSample]:
        """Predict one batch against the encoded support set.

        Returns:
            The batch's samples with ``seg_logits`` [2, H, W] and ``pred_sem_seg`` [1, H, W]
            at each query's size, ``support_imgs`` and ``support_masks`` (the support set's,
            shared) and metainfo ``support_paths`` and ``support_ori_shapes``.
        """
        if supports is None:
            raise ValueError('FewShotInferencer needs a support set: support_images and support_masks, or supports')
        samples = self.model.predict_with_support(self._normalise(inputs['inputs']), supports.prototypes,
                                                  inputs['data_samples'], params=supports.params)
        bad = torch.stack([(~torch.isfinite(s.seg_logits.data)).sum() for s in samples]).tolist()  # once per batch
        for sample, count in zip(samples, bad):
            if count:
                raise NonFiniteError(f'query {sample.metainfo["img_path"]}: {count} of its logits are NaN or inf, '
                                     'so no mask is written for it')
        for sample in samples:
            sample.support_imgs, sample.support_masks = supports.imgs, supports.masks
            sample.set_metainfo(dict(support_paths=supports.names, support_ori_shapes=supports.ori_shapes))
        return samples

    def visualize(self, inputs: List[ImageInput], preds: List[FewShotDataSample], return_vis: bool = False,
                  show: bool = False, wait_time: float = 0, img_out_dir: str = '', opacity: Optional[float] = None,
                  title: Optional[str] = None) -> Optional[List[np.ndarray]]:
        """Episode pictures (supports with masks | query | query with prediction) by the visualizer.

        Written to ``img_out_dir/<query stem>.png`` when given; returned with ``return_vis``.
        """
        if not (return_vis or show or img_out_dir):
            return None
        pictures = []
        for pred in preds:
            index, name = pred.metainfo['index'], pred.metainfo['img_path']
            panel = self.visualizer.draw_episode(self._read_image(inputs[index], name), pred, draw_gt=False,
                                                 opacity=opacity, title=title)
            if show:
                self.visualizer.show(panel, win_name=name, wait_time=wait_time)
            if img_out_dir:
                mmcv.imwrite(mmcv.rgb2bgr(panel), osp.join(img_out_dir, _output_stem(name, index) + '.png'))
            if return_vis:
                pictures.append(panel)
        return pictures if return_vis else None

    def postprocess(self, preds: List[FewShotDataSample], visualization: Optional[List[np.ndarray]] = None,
                    return_datasample: bool = False, pred_out_dir: str = '', return_prob: bool = False) -> dict:
        """``dict(predictions, visualization)``: the samples, or per query ``dict(name, mask[, prob])``.

        ``mask`` is uint8 [H, W] {0, 1} and ``prob`` float32 [H, W] (foreground probability),
        at the query's size. With ``pred_out_dir`` each mask is written there as
        ``<query stem>.png`` (0/255).
        """
        predictions = []
        for pred in preds:
            mask = pred.pred_sem_seg.data[0].to(torch.uint8).cpu().numpy()
            if pred_out_dir:
                name, index = pred.metainfo['img_path'], pred.metainfo['index']
                mmcv.imwrite(mask * 255, osp.join(pred_out_dir, _output_stem(name, index) + '.png'))
            if return_datasample:
                predictions.append(pred)
                continue
            result = dict(name=pred.metainfo['img_path'], mask=mask)
            if return_prob:
                result['prob'] = pred.seg_logits.data.softmax(0)[1].float().cpu().numpy()
            predictions.append(result)
        return dict(predictions=predictions, visualization=visualization)

    # ------------------------------------------------------------------ calls
    def __call__(self, inputs: Union[ImageInput, Sequence[ImageInput]],
                 support_images: Optional[Sequence[ImageInput]] = None,
                 support_masks: Optional[Sequence[ImageInput]] = None, supports: Optional[SupportSet] = None,
                 return_datasamples: bool = False, batch_size: int = 1, return_vis: bool = False,
                 show: bool = False, wait_time: float = 0, out_dir: str = '', img_out_dir: str = '',
                 pred_out_dir: str = '', opacity: Optional[float] = None, title: Optional[str] = None,
                 return_prob: bool = False, adapt_steps: Optional[int] = None, adapt_seed: int = 0) -> dict:
        """Predict every query against one support set.

        Args:
            inputs: query image(s): paths, a folder, uint8 RGB arrays.
            support_images, support_masks: the support set, encoded once for all queries;
                or ``supports``, one already encoded by :meth:`load_supports`.
            return_datasamples: return the :class:`FewShotDataSample` of each query.
            batch_size: queries per forward pass.
            return_vis, show, wait_time: return, show the episode pictures.
            out_dir: write pictures to ``out_dir/vis`` and masks to ``out_dir/pred``
                (``<query stem>.png``, ``query_<index>.png`` for arrays), as MMSegInferencer;
                ``img_out_dir`` and ``pred_out_dir`` set either folder alone.
            opacity, title: mask opacity and title line of the pictures.
            return_prob: add each query's foreground probability ``prob``.
            adapt_steps, adapt_seed: adapt the model to ``support_images`` first
                (:meth:`load_supports`' ``adapt_steps`` and ``seed``); ``supports`` were
                adapted, or not, when they were loaded.

        Returns:
            ``dict(predictions=[...], visualization=[...] or None)``; see :meth:`postprocess`.
        """
        if supports is None:
            if support_images is None or support_masks is None:
                raise ValueError('give support_images and support_masks, or supports from load_supports()')
            supports = self.load_supports(support_images, support_masks, adapt_steps, adapt_seed)
        elif adapt_steps or adapt_seed:
            raise ValueError('adapt_steps and adapt_seed adapt the model when the supports are loaded: give them '
                             'with support_images and support_masks, or to load_supports()')
        if out_dir:
            img_out_dir, pred_out_dir = osp.join(out_dir, 'vis'), osp.join(out_dir, 'pred')
        queries = self._inputs_to_list(inputs)
        if img_out_dir or pred_out_dir:
            output_stems(queries)
        return super().__call__(queries, return_datasamples=return_datasamples, batch_size=batch_size,
                                supports=supports, return_vis=return_vis, show=show, wait_time=wait_time,
                                img_out_dir=img_out_dir, opacity=opacity, title=title, pred_out_dir=pred_out_dir,
                                return_prob=return_prob)

    def predict(self, queries: Union[ImageInput, Sequence[ImageInput]], supports: SupportSet,
                batch_size: int = 1, return_prob: bool = False) -> Iterator[Dict]:
        """Check every query now, then predict them batch by batch as the iterator is consumed.

        Yields, per query in input order, a dict with ``name``, ``img`` (the decoded query,
        uint8 [H, W, 3] RGB), ``mask`` (uint8 [H, W] {0, 1} at the query's original size),
        ``data_sample`` (for :meth:`FewShotLocalVisualizer.draw_episode`) and, with
        ``return_prob``, ``prob`` (float32 [H, W] foreground probability).
        """
        batches = self.preprocess(self._inputs_to_list(queries), batch_size)
        return self._stream(batches, supports, return_prob)

    def _stream(self, batches: Iterator[dict], supports: SupportSet, return_prob: bool) -> Iterator[Dict]:
        for batch in batches:
            samples = self.forward(batch, supports)
            results = self.postprocess(samples, return_prob=return_prob)['predictions']
            for img, sample, result in zip(batch['ori_imgs'], samples, results):
                yield dict(result, img=img, data_sample=sample)
