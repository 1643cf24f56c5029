"""A visualizer that draws whole few-shot episodes (supports, query, prediction) for any vis backend."""
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import master_only
from mmengine.visualization import LocalVisBackend
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer
from PIL import Image, ImageDraw, ImageFont

from .episode_panel import GT_COLOUR, PRED_COLOUR, SUPPORT_COLOUR

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (20, 20, 20)


def _hw(shape) -> Tuple[int, int]:
    return int(shape[0]), int(shape[1])


def episode_iou(data_sample: SegDataSample) -> Optional[float]:
    """Foreground IoU of the prediction against the ground truth (label 255 ignored), or None without both.

    The prediction is nearest-resized to the ground truth when their sizes differ; an
    episode with neither foreground predicted nor labelled scores 1.
    """
    if 'gt_sem_seg' not in data_sample or 'pred_sem_seg' not in data_sample:
        return None
    gt = data_sample.gt_sem_seg.data[0].cpu()
    pred = data_sample.pred_sem_seg.data[0].cpu()
    if pred.shape != gt.shape:
        pred = F.interpolate(pred[None, None].float(), size=gt.shape, mode='nearest')[0, 0]
    valid = gt != 255
    p, g = (pred == 1) & valid, (gt == 1) & valid
    union = int((p | g).sum())
    return 1.0 if union == 0 else int((p & g).sum()) / union


def support_ori_shapes(data_sample: SegDataSample, count: int) -> List[Optional[Tuple[int, int]]]:
    """Each support's original (h, w): metainfo ``support_ori_shapes``, else the header of its file
    (metainfo ``support_paths``), else None."""
    meta = data_sample.metainfo
    shapes = meta.get('support_ori_shapes')
    if shapes is not None and len(shapes) == count:
        return [_hw(s) for s in shapes]
    out: List[Optional[Tuple[int, int]]] = []
    for path in list(meta.get('support_paths') or [])[:count]:
        try:
            with Image.open(path) as im:  # reads the header only
                out.append((im.height, im.width))
        except (OSError, TypeError, ValueError):
            out.append(None)
    return out + [None] * (count - len(out))


@VISUALIZERS.register_module()
class FewShotLocalVisualizer(SegLocalVisualizer):
    """Draws one episode per picture: each support with its mask, the query with its
    ground truth, the query with the prediction.

    Every tile is titled (``support k``, ``query``, ``prediction``) and shows its image
    in its own aspect ratio (the original size from metainfo ``ori_shape`` and
    ``support_ori_shapes``, or the support files' headers), with the mask filled at
    ``opacity`` and outlined. All tiles share one height: the query's original height,
    raised to ``min_size`` when smaller (small images are upscaled) and lowered to
    ``max_size`` when larger. A header line gives the class name (``classes`` of the
    dataset meta at metainfo ``class_id``), the episode's foreground IoU, its seed
    (``episode_seed``) and index (``episode``), after an optional title.

    :meth:`add_datasample` sends the picture to every vis backend (TensorBoard, W&B, ...)
    and, with ``out_file``, writes it there, the local backend being skipped then, so
    that no picture is written twice.

    Args:
        opacity: default fill opacity of the masks (0: outlines only).
        min_size, max_size: bounds of the tile height in pixels.
        contour_width: mask outline width in pixels (0: none).
        gap: pixels between tiles and around the panel.
        font_size: text size (PIL's default font).
        classes: class names; by default those of the dataset meta (the hook sets it).
        Other args as :class:`SegLocalVisualizer`.
    """

    def __init__(self, name: str = 'visualizer', image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None, save_dir: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None, palette: Optional[List] = None,
                 dataset_name: Optional[str] = None, opacity: float = 0.4, min_size: int = 256,
                 max_size: int = 512, contour_width: int = 2, gap: int = 8, font_size: int = 14,
                 **kwargs) -> None:
        # mmseg 1.2.2's __init__ passes palette and classes swapped and requires both: set them here
        super().__init__(name, image, vis_backends, save_dir, None, None, dataset_name, **kwargs)
        if classes is not None:
            self.dataset_meta = dict(classes=list(classes), palette=palette)
        elif dataset_name is None:
            self.dataset_meta = {}  # not mmseg's Cityscapes default: the runner or the hook sets the dataset's
        self.opacity = opacity
        self.min_size, self.max_size = min_size, max_size
        self.contour_width, self.gap, self.font_size = contour_width, gap, font_size
        try:
            self.font = ImageFont.load_default(size=font_size)
        except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the bitmap font
            self.font = ImageFont.load_default()

    # ------------------------------------------------------------------ drawing
    def class_name(self, data_sample: SegDataSample) -> Optional[str]:
        class_id = data_sample.metainfo.get('class_id')
        if class_id is None:
            return None
        classes = (self.dataset_meta or {}).get('classes') or ()
        return str(classes[class_id]) if 0 <= class_id < len(classes) else f'class {class_id}'

    def header(self, data_sample: SegDataSample, title: Optional[str] = None, draw_pred: bool = True) -> List[str]:
        """The text lines above the tiles."""
        meta = data_sample.metainfo
        facts = []
        name = self.class_name(data_sample)
        if name is not None:
            facts.append(f'class: {name}')
        iou = episode_iou(data_sample) if draw_pred else None
        if iou is not None:
            facts.append(f'IoU: {100 * iou:.1f}%')
        if meta.get('episode_seed') is not None:
            facts.append(f'seed {meta["episode_seed"]}')
        if meta.get('episode') is not None:
            facts.append(f'episode {meta["episode"]}')
        return ([title] if title else []) + (['   '.join(facts)] if facts else [])

    def _tile(self, img: np.ndarray, mask: Optional[torch.Tensor], size: Tuple[int, int],
              colour: Tuple[int, int, int], opacity: float) -> np.ndarray:
        """[H, W, 3] uint8 image -> [h, w, 3] (``size``) with ``mask`` filled and outlined."""
        h, w = size
        tile = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR)).astype(np.float32)
        if mask is None:
            return tile.astype(np.uint8)
        m = F.interpolate(mask.detach().cpu().reshape(1, 1, *mask.shape[-2:]).float(), size=(h, w),
                          mode='nearest')[0, 0] == 1
        colour_arr = np.asarray(colour, np.float32)
        fill = m.numpy()[..., None]
        tile = np.where(fill, (1 - opacity) * tile + opacity * colour_arr, tile)
        if self.contour_width > 0:
            mf = m.float()[None, None]
            k = 2 * self.contour_width + 1
            eroded = -F.max_pool2d(-mf, k, stride=1, padding=self.contour_width)
            dilated = F.max_pool2d(mf, k, stride=1, padding=self.contour_width)
            inner = ((mf - eroded) > 0)[0, 0].numpy()
            # the outline: inside the mask, a dark edge; outside, the mask colour
            outer = ((dilated - mf) > 0)[0, 0].numpy()
            tile[inner] = colour_arr
            tile[outer & ~m.numpy()] = colour_arr * 0.45
        return tile.round().clip(0, 255).astype(np.uint8)

    def draw_episode(self, image: np.ndarray, data_sample: SegDataSample, draw_gt: bool = True,
                     draw_pred: bool = True, opacity: Optional[float] = None,
                     title: Optional[str] = None) -> np.ndarray:
        """The episode's picture.

        Args:
            image: the query, uint8 RGB [H, W, 3] (or a [3, H, W] tensor), any size.
            data_sample: ``support_imgs`` uint8 [K, 3, h, w] and ``support_masks`` [K, h, w]
                (optional), ``gt_sem_seg`` and ``pred_sem_seg`` (optional, any size), and the
                metainfo above.
            draw_gt, draw_pred: draw the ground truth, the prediction tile.
            opacity: mask fill opacity; the visualizer's by default.
            title: a first header line.

        Returns:
            uint8 RGB [H, W, 3] picture.
        """
        opacity = self.opacity if opacity is None else opacity
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().permute(1, 2, 0).numpy()
        image = np.ascontiguousarray(image, dtype=np.uint8)
        meta = data_sample.metainfo
        query_shape = _hw(meta.get('ori_shape') or image.shape[:2])
        height = int(min(max(query_shape[0], self.min_size), self.max_size))

        def size_of(shape: Tuple[int, int]) -> Tuple[int, int]:
            return height, max(1, round(height * shape[1] / shape[0]))

        tiles, titles, colours = [], [], []
        if 'support_imgs' in data_sample:
            imgs = data_sample.support_imgs.detach().cpu()
            masks = data_sample.support_masks if 'support_masks' in data_sample else [None] * len(imgs)
            for k, (img, mask, shape) in enumerate(zip(imgs, masks, support_ori_shapes(data_sample, len(imgs)))):
                img = img.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
                tiles.append(self._tile(img, mask, size_of(shape or img.shape[:2]), SUPPORT_COLOUR, opacity))
                titles.append(f'support {k + 1}')
                colours.append(SUPPORT_COLOUR)
        gt = data_sample.gt_sem_seg.data[0] if draw_gt and 'gt_sem_seg' in data_sample else None
        tiles.append(self._tile(image, gt, size_of(query_shape), GT_COLOUR, opacity))
        titles.append('query')
        colours.append(GT_COLOUR if gt is not None else None)
        if draw_pred and 'pred_sem_seg' in data_sample:
            tiles.append(self._tile(image, data_sample.pred_sem_seg.data[0], size_of(query_shape), PRED_COLOUR,
                                    opacity))
            titles.append('prediction')
            colours.append(PRED_COLOUR)
        return self._compose(tiles, titles, colours, self.header(data_sample, title, draw_pred))

    def _compose(self, tiles: List[np.ndarray], titles: List[str], colours: List, header: List[str]) -> np.ndarray:
        gap, line = self.gap, self.font_size + 8
        measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))

        def text_width(text: str) -> int:
            box = measure.textbbox((0, 0), text, font=self.font)
            return box[2] - box[0]

        swatch = self.font_size
        header_h = line * len(header)
        tiles_w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
        width = 2 * gap + max([tiles_w] + [text_width(t) for t in header]
                              + [swatch + 6 + text_width(t) for t in titles])
        height = gap + header_h + line + tiles[0].shape[0] + gap
        panel = Image.new('RGB', (width, height), BACKGROUND)
        draw = ImageDraw.Draw(panel)
        for i, text in enumerate(header):
            draw.text((gap, gap + i * line), text, fill=TEXT_COLOUR, font=self.font)
        x, top = gap, gap + header_h
        for tile, text, colour in zip(tiles, titles, colours):
            tx = x
            if colour is not None:  # a swatch of the mask colour before the title
                draw.rectangle((x, top + 4, x + swatch - 2, top + 2 + swatch), fill=tuple(colour),
                               outline=TEXT_COLOUR)
                tx = x + swatch + 4
            draw.text((tx, top + 3), text, fill=TEXT_COLOUR, font=self.font)
            panel.paste(Image.fromarray(tile), (x, top + line))
            x += tile.shape[1] + gap
        return np.asarray(panel)

    # ------------------------------------------------------------------ mmengine's interface
    def add_datasample(self, name: str, image: np.ndarray, data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0, with_labels: Optional[bool] = True,
                       opacity: Optional[float] = None, title: Optional[str] = None) -> None:
        """Draw the episode (:meth:`draw_episode`); show it, write it to ``out_file``, send it to the backends.

        Without a data sample carrying ``support_imgs`` this is :class:`SegLocalVisualizer`'s.
        """
        if data_sample is None or 'support_imgs' not in data_sample:
            return super().add_datasample(name, image, data_sample, draw_gt, draw_pred, show, wait_time, out_file,
                                          step, with_labels)
        panel = self.draw_episode(image, data_sample, draw_gt, draw_pred, opacity, title)
        if show:
            self.show(panel, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(panel), out_file)
        self.send_image(name, panel, step, skip_local=out_file is not None)

    @master_only
    def send_image(self, name: str, image: np.ndarray, step: int = 0, skip_local: bool = False) -> None:
        """``add_image`` to every backend; with ``skip_local``, not to local ones (the file is written already)."""
        for backend in self._vis_backends.values():
            if skip_local and isinstance(backend, LocalVisBackend):
                continue
            backend.add_image(name, image, step)
