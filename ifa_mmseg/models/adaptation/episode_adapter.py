"""Per-episode IFA adaptation at test time: every episode adapts its own copy of the weights on its supports.

``adaptation_labels='episode'``: before its query is predicted, an episode adapts the
model on pseudo-query episodes built from its own K supports (an augmented support as
query, the K supports as supports; official ``ifa.py`` loss and augmentations), then the
weights return to the checkpoint's.

What is frozen is computed once: every image of an episode (its V pseudo-queries, its K
supports, its query) goes once through the backbone up to the first adapted parameter
(:class:`FeatureSplit`), in one batched pass; each step then runs only the rest of the
backbone, forward and backward, on that step's pseudo-queries and the supports.

Two engines compute the same function:

* ``'loop'`` (default): each episode alone, with its own weight copy and the ordinary
  kernels; on a CPU with T intra-op threads, T episodes at a time in single-threaded worker
  threads (:func:`in_single_threaded_workers`). Independent by construction: an episode's
  computation never sees another's tensors.
* ``'vmap'``: the B episodes of a batch together, their weight copies stacked on a leading
  dimension (``torch.func.vmap`` over ``torch.func.functional_call``; a convolution with
  per-episode weights becomes a grouped convolution). Independent because the total loss
  is the sum of the per-episode losses and the optimizer acts elementwise; on CPU its
  convolutions run in PyTorch's own kernels (:func:`batch_invariant_convolutions`). On CPU
  it is slower than the loop or as fast (``docs/benchmarks.md``); on GPUs no test has yet
  shown an episode alone equal to the same episode in a batch.

Other segmentors share the settings, the step schedule, the optimizer and the loop engine's
episode-by-episode schedule (:meth:`EpisodeAdapter.map_episodes`, :meth:`~EpisodeAdapter.episode_params`,
:meth:`~EpisodeAdapter.optimize`) and supply their own frozen pass and step loss
(:meth:`~ifa_mmseg.models.HypercorrSegmentor.adapted_episode_logits`: HSNet, PATNet).
"""
import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import torch
from mmengine.registry import OPTIMIZERS
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..utils.memory import keep_memory_format
from .feature_split import FeatureSplit, backbone_blocks, owns

Params = Dict[str, Tensor]  # parameter name -> per-episode weights [B, *shape]
StepLoss = Callable[[Dict[str, Tensor], List[int]], Tensor]  # (one episode's weights, a step's views) -> loss
T = TypeVar('T')
# torch optimizers whose update of an element depends on that element's gradient history only
ELEMENTWISE_OPTIMIZERS = ('SGD', 'Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam', 'RMSprop', 'Adagrad', 'Adadelta')
ENGINES = ('loop', 'vmap')
# layers whose affine parameters stay the checkpoint's unless adapt_norms=True
# (mmcv's and mmpretrain's norm layers subclass them)
NORM_LAYERS = (_BatchNorm, _InstanceNorm, nn.LayerNorm, nn.GroupNorm)
PARAM_CHOICES = ('trainable', 'last_block')
# The per-episode adaptation recipes; a config's episode_adaptation names one (``recipe``; the default one is
# named in configs/_base_/default_runtime.py) and may override any of its keys. Both adapt what IFA trains, each
# step on new pseudo-queries. 'full': 20 SGD steps of 2 pseudo-queries at IFA's learning rate (the sweep that chose
# them: docs/demo.md). 'light': 2 Adam steps of 1 pseudo-query, the best held-out mIoU among the settings of at most
# that much work; the parameter-efficient candidates (the last block, a fixed bank of views) kept under half of the
# gain there (the sweeps, and the cost and gain of both recipes on two targets: docs/benchmarks.md).
EPISODE_RECIPES: Dict[str, dict] = dict(
    full=dict(steps=20, queries_per_step=2, views=None, params='trainable',
              optimizer=dict(type='SGD', lr=5e-4, momentum=0.9, weight_decay=5e-4)),
    light=dict(steps=2, queries_per_step=1, views=None, params='trainable', optimizer=dict(type='Adam', lr=2e-3)),
)


def episode_adaptation_settings(settings: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Complete :class:`EpisodeAdapter` settings: those of ``settings['recipe']`` (:data:`EPISODE_RECIPES`)
    with the other stated keys over them (``optimizer`` key by key)."""
    settings = dict(settings or {})
    recipe = settings.pop('recipe', None)
    if recipe not in EPISODE_RECIPES:
        raise ValueError(f'episode adaptation: recipe must be one of {sorted(EPISODE_RECIPES)} '
                         f'(episode_adaptation.recipe), got {recipe!r}')
    full = copy.deepcopy(EPISODE_RECIPES[recipe])
    optimizer = settings.pop('optimizer', None) or {}
    full.update(settings)
    if optimizer.get('type', full['optimizer']['type']) != full['optimizer']['type']:
        full['optimizer'] = dict(optimizer)  # another optimizer: none of the recipe's arguments
    else:
        full['optimizer'].update(optimizer)
    return full


@contextmanager
def batch_invariant_convolutions(device: torch.device) -> Iterator[None]:
    """On CPU, convolutions (forward and backward) by PyTorch's own kernels instead of oneDNN's.

    vmap runs a convolution with per-episode weights as one grouped convolution. oneDNN's
    grouped convolution rounds differently for different group counts, i.e. batch sizes,
    and adaptation amplifies that; PyTorch's kernel computes each group alone, so an
    episode's result does not depend on the others in its batch.
    """
    if device.type != 'cpu':
        yield
        return
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def adapted_features(segmentor: nn.Module, params: Dict[str, Tensor], images: Tensor) -> Tensor:
    """``segmentor.extract_feat(images)`` under one episode's weights.

    Args:
        segmentor: a module with ``backbone``, ``extract_feat`` and ``in_index``.
        params: parameter name -> weights (one episode's, no leading episode dimension).
        images: [N, 3, H, W].

    Returns:
        [N, C, h, w].
    """
    split = FeatureSplit(segmentor, list(params))
    return functional_call(split, _under_split(params), (split.prefix(images), ))


def _under_split(params: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Segmentor parameter names as :class:`FeatureSplit` holds them."""
    return {f'segmentor.{k}': v for k, v in params.items()}


def in_single_threaded_workers(model: nn.Module, fn: Callable[[int, nn.Module], T], num_items: int,
                               workers: int) -> List[T]:
    """``[fn(i, model_copy) for i in range(num_items)]`` over ``workers`` single-threaded threads.

    On a CPU with T intra-op threads the 'loop' engine runs its episodes T at a time, each
    single-threaded: small convolutions use one core better than T cores do. Each worker
    adapts its own copy of the model (``functional_call`` swaps a module's parameters, so
    two threads cannot share one). Every episode is computed single-threaded whatever T
    and the batch size, so its result is the same as with ``OMP_NUM_THREADS=1``.
    """
    local = threading.local()

    def start() -> None:
        torch.set_num_threads(1)
        local.model = copy.deepcopy(model)

    def run(i: int) -> T:
        return fn(i, local.model)

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers, initializer=start) as pool:
            return list(pool.map(run, range(num_items)))
    finally:
        torch.set_num_threads(threads)  # a worker's setting also reaches the process-wide defaults


class EpisodeAdapter:
    """Adapts per-episode copies of a segmentor's weights on each episode's pseudo-queries.

    Each episode carries V pseudo-queries (augmented copies of its supports, built by the
    data pipeline). Step ``s`` takes ``queries_per_step`` of them, cycling through the V
    (views ``s*P .. s*P + P - 1`` modulo V), forms one pseudo-episode per pseudo-query (that
    query against the episode's K supports), and makes one optimizer step on the episode's
    IFA loss (the head's ``loss_weights``, averaged over its pseudo-episodes). BatchNorm
    keeps the mode the model is in (eval at test time: running statistics, nothing updated);
    normalisation layers' affine parameters adapt only with ``adapt_norms=True``.

    Its settings usually come from a config's ``episode_adaptation`` through
    :meth:`from_settings` (a recipe of :data:`EPISODE_RECIPES` and overrides).

    Args:
        steps: optimizer steps per episode; 0 leaves the weights as they are (and needs no
            pseudo-query).
        queries_per_step: pseudo-queries (pseudo-episodes) per step, P.
        optimizer: an elementwise torch optimizer config (``ELEMENTWISE_OPTIMIZERS``),
            e.g. ``dict(type='SGD', lr=1e-3, momentum=0.9)``.
        params: which parameters adapt: ``'trainable'`` (those with ``requires_grad``,
            the ones IFA trains), ``'last_block'`` (the backbone's last block: a residual
            block, a transformer layer with the final norm) or a list of name prefixes
            (e.g. ``['backbone.layer3']``), each taken without the normalisation layers'
            parameters unless ``adapt_norms``.
        views: V, the pseudo-queries drawn per episode and reused across steps (a fixed
            bank, featurised once up to the first adapted parameter); ``None``: a new one
            for every use, V = ``steps * queries_per_step``.
        engine: ``'loop'`` or ``'vmap'`` (see the module docstring).
        adapt_norms: let the affine parameters of the selected normalisation layers
            (:data:`NORM_LAYERS`: BatchNorm, LayerNorm, GroupNorm, InstanceNorm) adapt too.
    """

    def __init__(self,
                 steps: int,
                 queries_per_step: int,
                 optimizer: dict,
                 params: Union[str, Sequence[str]],
                 views: Optional[int] = None,
                 engine: str = 'loop',
                 adapt_norms: bool = False) -> None:
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f'episode adaptation: steps must be a whole number >= 0, got {steps!r}')
        if not isinstance(queries_per_step, int) or queries_per_step < 1:
            raise ValueError(f'episode adaptation: queries_per_step must be a whole number >= 1, '
                             f'got {queries_per_step!r}')
        if views is not None and (not isinstance(views, int) or views < queries_per_step):
            raise ValueError(f'episode adaptation: views must be None or a whole number >= queries_per_step '
                             f'({queries_per_step}), got {views!r}')
        if engine not in ENGINES:
            raise ValueError(f'episode adaptation: engine must be one of {ENGINES}, got {engine!r}')
        optimizer = dict(optimizer)
        if optimizer.get('type') not in ELEMENTWISE_OPTIMIZERS:
            raise ValueError(f'episode adaptation: optimizer type {optimizer.get("type")!r} is not one of '
                             f'{ELEMENTWISE_OPTIMIZERS}, whose updates act element by element: another could mix '
                             "the episodes' weight copies (e.g. a norm over the whole tensor)")
        if params not in PARAM_CHOICES and (isinstance(params, str) or not params):
            raise ValueError(f'episode adaptation: params must be one of {PARAM_CHOICES} or a list of parameter '
                             f'name prefixes, got {params!r}')
        self.steps = steps
        self.queries_per_step = queries_per_step
        self.optimizer = optimizer
        self.params = params if params in PARAM_CHOICES else tuple(params)
        self.views = views
        self.engine = engine
        self.adapt_norms = adapt_norms

    @classmethod
    def from_settings(cls, settings: Optional[Mapping[str, Any]] = None) -> 'EpisodeAdapter':
        """The adapter of a config's ``episode_adaptation`` (:func:`episode_adaptation_settings`)."""
        return cls(**episode_adaptation_settings(settings))

    @property
    def num_queries(self) -> int:
        """Pseudo-queries an episode needs: V (``views``, or ``steps * queries_per_step``); 0 without steps."""
        if self.steps == 0:
            return 0
        return self.views if self.views is not None else self.steps * self.queries_per_step

    def view_indices(self, step: int) -> List[int]:
        """The pseudo-queries (indices into the V) that step ``step`` uses."""
        p = self.queries_per_step
        return [(step * p + i) % self.num_queries for i in range(p)]

    def parameter_names(self, model: nn.Module) -> List[str]:
        """The names of the parameters that adapt (a normalisation layer's only with ``adapt_norms``)."""
        norms = set() if self.adapt_norms else {
            f'{m}.{n}' for m, module in model.named_modules() if isinstance(module, NORM_LAYERS)
            for n, _ in module.named_parameters(recurse=False)}
        named = [(n, p) for n, p in model.named_parameters() if n not in norms]
        if self.params == 'trainable':
            names = [n for n, p in named if p.requires_grad]
        else:
            prefixes = self.params if self.params != 'last_block' else self._last_block(model)
            names = [n for n, _ in named if owns(prefixes, n)]
            unmatched = [] if self.params == 'last_block' else [
                pre for pre in prefixes if not any(owns((pre, ), n) for n, _ in named)]
            if unmatched:  # a stated name; the last block's final norm may have nothing left to adapt
                aside = '' if self.adapt_norms else ', normalisation layers aside (adapt_norms=True takes them)'
                raise ValueError(f'episode adaptation: no parameter of the model is named {unmatched} (or below '
                                 f'it){aside}')
        if not names:
            raise ValueError('episode adaptation: no parameter adapts (params=%r)' % (self.params, ))
        return names

    @staticmethod
    def _last_block(model: nn.Module) -> Tuple[str, ...]:
        blocks = backbone_blocks(model.backbone)
        if blocks is None:
            raise ValueError(f"episode adaptation: params='last_block' needs a backbone whose blocks are known "
                             f'(ifa_mmseg.models.adaptation.feature_split.BACKBONE_BLOCKS), not '
                             f'{type(model.backbone).__name__}; name the parameters instead')
        return tuple(f'backbone.{p}' for p in blocks[-1].owns)

    def initial_params(self, model: nn.Module, num_episodes: int) -> Params:
        """Per-episode copies [B, *shape] of the adapting parameters, as the model holds them."""
        own = dict(model.named_parameters())
        return {n: own[n].detach().unsqueeze(0).repeat(num_episodes, *([1] * own[n].dim()))
                for n in self.parameter_names(model)}

    def adapt(self, model: nn.Module, supports: Tensor, support_masks: Tensor, queries: Tensor,
              query_masks: Tensor) -> Params:
        """Adapted per-episode weights.

        Args:
            model: an :class:`~ifa_mmseg.models.IFASegmentor` (``extract_feat`` and an IFA-style
                ``decode_head``).
            supports: [B, K, 3, H, W] normalised support images.
            support_masks: [B, K, H, W] binary support masks.
            queries: [B, V, 3, H, W] normalised pseudo-queries, V = :attr:`num_queries`.
            query_masks: [B, V, H, W] their masks.

        Returns:
            Parameter name -> [B, *shape] weights after :attr:`steps` steps.
        """
        return self._run(model, None, supports, support_masks, queries, query_masks)[0]

    def features(self, model: nn.Module, images: Tensor, supports: Tensor, support_masks: Tensor,
                 queries: Optional[Tensor], query_masks: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Features of each episode's query and supports under its adapted weights.

        As :meth:`adapt`, plus ``images`` [B, 3, H, W], the episodes' queries; the frozen
        part of their features is computed in the same pass as the pseudo-queries'.
        ``queries``/``query_masks`` may be ``None`` without steps.

        Returns:
            [B, C, h, w] query features and [K*B, C, h, w] support features, shot-major (row ``k*B + b``).
        """
        feats = self._run(model, images, supports, support_masks, queries, query_masks)[1]
        return feats[:, 0], feats[:, 1:].transpose(0, 1).flatten(0, 1)

    def _run(self, model: nn.Module, images: Optional[Tensor], supports: Tensor, support_masks: Tensor,
             queries: Optional[Tensor], query_masks: Optional[Tensor]) -> Tuple[Params, Optional[Tensor]]:
        """(adapted weights [B, *shape], features [B, 1+K, C, h, w] of each query and its supports or ``None``)."""
        b, k = supports.shape[:2]
        v = self.num_queries
        self.check_queries(queries)
        head = model.decode_head
        if k > 1 and getattr(head, 'support_order', 'correct') != 'correct':
            raise ValueError("episode adaptation needs decode_head.support_order='correct': the official K>1 order "
                             'pairs support rows with other episodes')
        names = self.parameter_names(model)
        shape = supports.shape[-2:]

        def episode_images(e: int) -> Tensor:
            """Every image of episode ``e``, for one pass through the frozen prefix: views, supports, its query."""
            own = [supports[e]] if queries is None else [queries[e, :v], supports[e]]
            return torch.cat(own + ([] if images is None else [images[e:e + 1]])).to(supports.dtype)

        if self.engine == 'vmap':
            split = FeatureSplit(model, names)
            prefix = torch.stack([split.prefix(episode_images(e)) for e in range(b)])
            return self._adapt_batch(model, split, names, prefix, support_masks, query_masks, shape,
                                     images is not None)

        def episode(e: int, segmentor: nn.Module) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
            # one episode's images and prefix at a time: memory does not grow with the batch
            split = FeatureSplit(segmentor, names)
            return self._adapt_episode(segmentor, split, names, split.prefix(episode_images(e)), support_masks[e],
                                       None if query_masks is None else query_masks[e], shape, images is not None)

        episodes = self.map_episodes(model, episode, b, supports.device)
        params = {n: torch.stack([p[n] for p, _ in episodes]) for n in names}
        return params, None if images is None else torch.stack([f for _, f in episodes])

    def _pseudo_episodes(self, feats: Tensor, support_masks: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """One step's pseudo-episodes of one episode.

        Args:
            feats: [P + K, C, h, w]: the step's pseudo-queries, then the supports.
            support_masks: [K, H, W].

        Returns:
            Query features [P, C, h, w], support features [K*P, C, h, w] and masks [K*P, H, W], shot-major.
        """
        p = self.queries_per_step
        k = support_masks.shape[0]
        feat_s = feats[p:, None].expand(k, p, *feats.shape[1:]).flatten(0, 1)
        return feats[:p], feat_s, support_masks[:, None].expand(k, p, *support_masks.shape[1:]).flatten(0, 1)

    def _optimizer(self, params: Params) -> torch.optim.Optimizer:
        return OPTIMIZERS.build(dict(self.optimizer, params=list(params.values())))

    def check_queries(self, queries: Optional[Tensor]) -> None:
        """Refuse pseudo-queries [B, V', 3, H, W] (or ``None``) that are not the V the steps use."""
        v = self.num_queries
        if v and (queries is None or queries.shape[1] != v):
            got = 'none' if queries is None else queries.shape[1]
            raise ValueError(f'episode adaptation: {self.steps} steps over {v} pseudo-queries per episode '
                             f'(views={self.views}, queries_per_step={self.queries_per_step}) need {v}, got {got}')

    def map_episodes(self, model: nn.Module, episode: Callable[[int, nn.Module], T], num_episodes: int,
                     device: torch.device) -> List[T]:
        """``[episode(e, model) for e in range(num_episodes)]``, the 'loop' engine's schedule: on a CPU with
        more than one intra-op thread, in single-threaded workers with their own model copies
        (:func:`in_single_threaded_workers`)."""
        threads = torch.get_num_threads()
        if device.type == 'cpu' and threads > 1:
            return in_single_threaded_workers(model, episode, num_episodes, min(num_episodes, threads))
        return [episode(e, model) for e in range(num_episodes)]

    def episode_params(self, model: nn.Module, names: Sequence[str]) -> Dict[str, Tensor]:
        """One episode's own copy of the adapting parameters (name -> [*shape]), leaves of :meth:`optimize`."""
        own = dict(model.named_parameters())
        return {n: own[n].detach().clone().requires_grad_(self.steps > 0) for n in names}

    def optimize(self, params: Dict[str, Tensor], step_loss: StepLoss) -> Dict[str, Tensor]:
        """One episode's :attr:`steps` optimizer steps; step ``s`` on ``step_loss(params, view_indices(s))``.

        The segmentor supplies ``step_loss`` (its model's loss on those pseudo-queries against the
        episode's supports, under ``params``); the schedule and the optimizer are this adapter's.

        Args:
            params: from :meth:`episode_params`; updated in place.
            step_loss: ``(params, views) -> scalar loss``.

        Returns:
            The adapted weights, detached.
        """
        if self.steps:
            optimizer = self._optimizer(params)
            with torch.enable_grad():
                for step in range(self.steps):
                    step_loss(params, self.view_indices(step)).backward()  # its graph is freed before the next
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        return {n: p.detach() for n, p in params.items()}

    def _adapt_episode(self, model: nn.Module, split: FeatureSplit, names: List[str], prefix: Tensor,
                       support_masks: Tensor, query_masks: Optional[Tensor], size: torch.Size,
                       with_image: bool) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
        """The ``'loop'`` engine on one episode.

        Args:
            prefix: [V + K (+ 1), ...] frozen-prefix outputs of its pseudo-queries, supports (and query).
            support_masks: [K, H, W]; query_masks: [V, H, W].

        Returns:
            Its adapted weights (name -> [*shape]) and, with its query, [1 + K, C, h, w] features.
        """
        v, k = self.num_queries, support_masks.shape[0]
        head = model.decode_head

        def step_loss(params: Dict[str, Tensor], views: List[int]) -> Tensor:
            feats = functional_call(split, _under_split(params), (torch.cat((prefix[views], prefix[v:v + k])), ))
            feat_q, feat_s, masks = self._pseudo_episodes(feats, support_masks)
            step_masks = query_masks[views]
            logits = head(feat_q, feat_s, masks.to(feat_s.dtype), query_mask=step_masks, size=size, training=True)
            return sum(head.loss(logits, step_masks, masks).values())

        params = self.optimize(self.episode_params(model, names), step_loss)
        if not with_image:
            return params, None
        with torch.no_grad():
            feats = functional_call(split, _under_split(params), (torch.cat((prefix[v + k:], prefix[v:v + k])), ))
        return params, feats

    def _adapt_batch(self, model: nn.Module, split: FeatureSplit, names: List[str], prefix: Tensor,
                     support_masks: Tensor, query_masks: Optional[Tensor], size: torch.Size,
                     with_image: bool) -> Tuple[Params, Optional[Tensor]]:
        """The ``'vmap'`` engine: all B episodes at once (``prefix``: [B, V + K (+ 1), ...])."""
        b, k = support_masks.shape[:2]
        v, p = self.num_queries, self.queries_per_step
        params = self.initial_params(model, b)
        head = model.decode_head

        def suffix(x: Tensor, weights: Params) -> Tensor:
            with keep_memory_format():  # vmap cannot convert its batched tensors to channels-last
                return vmap(lambda w, y: functional_call(split, _under_split(w), (y, )))(weights, x)

        if self.steps:
            for value in params.values():
                value.requires_grad_(True)
            optimizer = self._optimizer(params)
            # pseudo-episode e = b * P + i (query i of episode b); its K support rows are shot-major
            group = torch.arange(b, device=support_masks.device).repeat_interleave(p)
            mask_rows = support_masks.transpose(0, 1)[:, :, None].expand(k, b, p, *support_masks.shape[2:])
            mask_rows = mask_rows.flatten(0, 2)
            with torch.enable_grad(), batch_invariant_convolutions(support_masks.device):
                for step in range(self.steps):
                    views = self.view_indices(step)
                    step_masks = query_masks[:, views].flatten(0, 1)
                    feats = suffix(torch.cat((prefix[:, views], prefix[:, v:v + k]), 1), params)
                    feat_q = feats[:, :p].flatten(0, 1)
                    feat_s = feats[:, p:].transpose(0, 1)[:, :, None].expand(k, b, p, *feats.shape[2:]).flatten(0, 2)
                    logits = head(feat_q, feat_s, mask_rows.to(feat_s.dtype), query_mask=step_masks, size=size,
                                  training=True)
                    losses = head.loss(logits, step_masks, mask_rows, group, b)
                    torch.stack([loss.sum() for loss in losses.values()]).sum().backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    del feats, feat_q, feat_s, logits, losses  # not alive beside the next step's activations
        params = {n: value.detach() for n, value in params.items()}
        if not with_image:
            return params, None
        with torch.no_grad(), batch_invariant_convolutions(support_masks.device):
            return params, suffix(torch.cat((prefix[:, v + k:], prefix[:, v:v + k]), 1), params)
