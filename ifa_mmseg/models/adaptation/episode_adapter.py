"""Per-episode IFA adaptation at test time: every episode adapts its own copy of the weights on its supports.

``adaptation_labels='episode'``: before its query is predicted, an episode adapts the
model on pseudo-query episodes built from its own K supports (an augmented support as
query, the K supports as supports; official ``ifa.py`` loss and augmentations), then the
weights return to the checkpoint's. The B episodes of a batch adapt together: each has its
own copy of the adapted parameters, stacked on a leading episode dimension, and the
backbone runs once per step for all of them (``torch.func.vmap`` over
``torch.func.functional_call``; a convolution with per-episode weights becomes one grouped
convolution). The head is parameter-free and already batched over episodes.

Independent by construction: episode b's loss depends only on its own weights and
images, the total loss is the sum of the per-episode losses (so each copy's gradient is
its own loss's), and the optimizer acts elementwise.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Sequence, Union

import torch
from mmengine.registry import OPTIMIZERS
from torch import Tensor, nn
from torch.func import functional_call, vmap

Params = Dict[str, Tensor]  # parameter name -> per-episode weights [B, *shape]
# torch optimizers whose update of an element depends on that element's gradient history only
ELEMENTWISE_OPTIMIZERS = ('SGD', 'Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam', 'RMSprop', 'Adagrad', 'Adadelta')


class _Features(nn.Module):
    """A segmentor's ``extract_feat`` as a module's forward, for ``functional_call``."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, images: Tensor) -> Tensor:
        return self.segmentor.extract_feat(images)


def episode_features(segmentor: nn.Module, params: Params, images: Tensor) -> Tensor:
    """Features of every episode's images under that episode's weights.

    Args:
        segmentor: a module with ``extract_feat`` ([N, 3, H, W] -> [N, C, h, w]).
        params: per-episode weights, parameter name -> [B, *shape]; the other
            parameters and buffers are the segmentor's.
        images: [B, N, 3, H, W], N images per episode.

    Returns:
        [B, N, C, h, w].
    """
    module = _Features(segmentor)

    def one_episode(p: Params, x: Tensor) -> Tensor:
        return functional_call(module, {f'segmentor.{k}': v for k, v in p.items()}, (x, ))

    with batch_invariant_convolutions(images.device):
        return vmap(one_episode)(params, images)


@contextmanager
def batch_invariant_convolutions(device: torch.device) -> Iterator[None]:
    """On CPU, convolutions (forward and backward) by PyTorch's own kernels instead of oneDNN's.

    vmap runs a convolution with per-episode weights as one grouped convolution. oneDNN's
    grouped convolution with few input channels per group (an adapted RGB stem) rounds
    differently for different group counts, i.e. batch sizes, and adaptation amplifies
    that; PyTorch's kernel computes each group alone, so an episode's result does not
    depend on the others in its batch.
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


class EpisodeAdapter:
    """Adapts per-episode copies of a segmentor's weights on each episode's pseudo-queries.

    Each of ``steps`` steps takes the next ``queries_per_step`` pseudo-queries of every
    episode (augmented copies of its supports, built by the data pipeline), forms one
    pseudo-episode per pseudo-query (that query against the episode's K supports), and
    makes one optimizer step on the sum over episodes of each episode's IFA loss (the
    head's ``loss_weights``, averaged over its own pseudo-episodes). BatchNorm keeps the
    mode the model is in (eval at test time: running statistics, nothing updated).

    Args:
        steps: optimizer steps per episode; 0 leaves the weights as they are.
        queries_per_step: pseudo-queries (pseudo-episodes) per episode and step.
        optimizer: an elementwise torch optimizer config (``ELEMENTWISE_OPTIMIZERS``),
            e.g. ``dict(type='SGD', lr=1e-3, momentum=0.9)``.
        params: which parameters adapt: ``'trainable'`` (those with ``requires_grad``,
            the ones IFA trains) or a list of name prefixes (e.g. ``['backbone.layer3']``).
    """

    def __init__(self,
                 steps: int = 10,
                 queries_per_step: int = 1,
                 optimizer: dict = dict(type='SGD', lr=5e-4, momentum=0.9, weight_decay=5e-4),
                 params: Union[str, Sequence[str]] = 'trainable') -> None:
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f'episode adaptation: steps must be a whole number >= 0, got {steps!r}')
        if not isinstance(queries_per_step, int) or queries_per_step < 1:
            raise ValueError(f'episode adaptation: queries_per_step must be a whole number >= 1, '
                             f'got {queries_per_step!r}')
        optimizer = dict(optimizer)
        if optimizer.get('type') not in ELEMENTWISE_OPTIMIZERS:
            raise ValueError(f'episode adaptation: optimizer type {optimizer.get("type")!r} is not one of '
                             f'{ELEMENTWISE_OPTIMIZERS}, whose updates act element by element: another could mix '
                             "the episodes' weight copies (e.g. a norm over the whole tensor)")
        if params != 'trainable' and (isinstance(params, str) or not params):
            raise ValueError(f"episode adaptation: params must be 'trainable' or a list of parameter name prefixes, "
                             f'got {params!r}')
        self.steps = steps
        self.queries_per_step = queries_per_step
        self.optimizer = optimizer
        self.params = params if params == 'trainable' else tuple(params)

    @property
    def num_queries(self) -> int:
        """Pseudo-queries an episode needs: ``steps * queries_per_step``."""
        return self.steps * self.queries_per_step

    def parameter_names(self, model: nn.Module) -> List[str]:
        """The names of the parameters that adapt."""
        named = list(model.named_parameters())
        if self.params == 'trainable':
            names = [n for n, p in named if p.requires_grad]
        else:
            names = [n for n, _ in named if any(n == pre or n.startswith(pre + '.') for pre in self.params)]
            unmatched = [pre for pre in self.params if not any(n == pre or n.startswith(pre + '.') for n, _ in named)]
            if unmatched:
                raise ValueError(f'episode adaptation: no parameter of the model is named {unmatched} (or below it)')
        if not names:
            raise ValueError('episode adaptation: no parameter adapts (params=%r)' % (self.params, ))
        return names

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
                ``decode_head`` with ``episode_losses``).
            supports: [B, K, 3, H, W] normalised support images.
            support_masks: [B, K, H, W] binary support masks.
            queries: [B, N, 3, H, W] normalised pseudo-queries, N = :attr:`num_queries`.
            query_masks: [B, N, H, W] their masks.

        Returns:
            Parameter name -> [B, *shape] weights after :attr:`steps` steps.
        """
        b, k = supports.shape[:2]
        p = self.queries_per_step
        if queries.shape[1] != self.num_queries:
            raise ValueError(f'episode adaptation: {self.steps} steps of {p} pseudo-queries need {self.num_queries} '
                             f'per episode, got {queries.shape[1]}')
        head = model.decode_head
        if k > 1 and getattr(head, 'support_order', 'correct') != 'correct':
            raise ValueError("episode adaptation needs decode_head.support_order='correct': the official K>1 order "
                             'pairs support rows with other episodes')
        params = self.initial_params(model, b)
        if self.steps == 0:
            return params
        for value in params.values():
            value.requires_grad_(True)
        optimizer = OPTIMIZERS.build(dict(self.optimizer, params=list(params.values())))
        # pseudo-episode e = b * p + i (query i of episode b); its K support rows are shot-major
        group = torch.arange(b, device=supports.device).repeat_interleave(p)
        support_masks_rows = support_masks.transpose(0, 1)[:, :, None].expand(k, b, p, *support_masks.shape[2:])
        support_masks_rows = support_masks_rows.flatten(0, 2)
        with torch.enable_grad(), batch_invariant_convolutions(supports.device):
            for step in range(self.steps):
                step_queries = queries[:, step * p:(step + 1) * p]
                step_masks = query_masks[:, step * p:(step + 1) * p].flatten(0, 1)
                feats = episode_features(model, params, torch.cat((step_queries, supports), 1))
                feat_q = feats[:, :p].flatten(0, 1)
                feat_s = feats[:, p:].transpose(0, 1)[:, :, None].expand(k, b, p, *feats.shape[2:]).flatten(0, 2)
                logits = head(feat_q, feat_s, support_masks_rows.to(feat_s.dtype), query_mask=step_masks,
                              size=queries.shape[-2:], training=True)
                losses = head.episode_losses(logits, step_masks, support_masks_rows, group, b)
                optimizer.zero_grad(set_to_none=True)
                torch.stack([loss.sum() for loss in losses.values()]).sum().backward()
                optimizer.step()
                del feats, feat_q, feat_s, logits, losses  # not alive beside the next step's activations
        return {n: v.detach() for n, v in params.items()}
