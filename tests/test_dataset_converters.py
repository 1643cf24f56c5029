"""Dataset preparation tools (issue 3 item 5) on small data generated in the real source layouts."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ifa_mmseg.datasets.converters import ConversionError, check_chestxray, prepare_deepglobe, prepare_isic
from ifa_mmseg.datasets.converters import chestxray, deepglobe, isic

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools' / 'dataset_converters'

# RGB colours of the DeepGlobe label maps
AGRI, URBAN, RANGE, FOREST, WATER, BARREN = (255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (0, 0, 255), \
    (255, 255, 255)
UNKNOWN, IMPURE = (0, 0, 0), (254, 255, 0)
CELL, GRID = 16, 6  # small tiles for the synthetic source; the defaults stay 408 / 6


def run_tool(name, *args):
    """Run a tool through its command line with the project's interpreter."""
    return subprocess.run([sys.executable, str(TOOLS / f'{name}.py'), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


# ---------------------------------------------------------------------------------------------
# DeepGlobe
# ---------------------------------------------------------------------------------------------

def _tile(*parts):
    """A CELL x CELL RGB tile from (colour, row-slice) parts painted in order on a FOREST base."""
    t = np.zeros((CELL, CELL, 3), np.uint8)
    t[:] = FOREST
    for colour, where in parts:
        t[where] = colour
    return t


def _first_pixels(n, colour, base=FOREST):
    t = np.zeros((CELL * CELL, 3), np.uint8)
    t[:] = base
    t[:n] = colour
    return t.reshape(CELL, CELL, 3)


LEFT, RIGHT = np.s_[:, :CELL // 2], np.s_[:, CELL // 2:]
TOP, BOTTOM = np.s_[:CELL // 2, :], np.s_[CELL // 2:, :]

# (i, j) -> mask tile of image 100; all other tiles are pure FOREST (one colour: dropped)
TILES_100 = {
    (0, 1): _tile((AGRI, LEFT), (URBAN, RIGHT)),                  # kept: 1, 2
    (1, 2): _first_pixels(12, WATER),                              # 12/256 < 4.8 %: dropped
    (1, 3): _first_pixels(13, WATER),                              # 13/256 > 4.8 %: kept: 4, 5
    (2, 4): _tile((UNKNOWN, TOP), (BARREN, BOTTOM)),               # kept: 6
    (3, 5): _tile((AGRI, LEFT), (IMPURE, RIGHT)),                  # kept: 1 (impure not matched)
    (4, 0): _tile((UNKNOWN, LEFT), (IMPURE, RIGHT)),               # kept, in no class
    (5, 5): _tile((RANGE, np.s_[:8, :8]), (AGRI, np.s_[:8, 8:]), (URBAN, np.s_[8:, :8])),  # kept: 1-4
}
TILES_200 = {(0, 0): _tile((WATER, np.s_[:5]), (BARREN, np.s_[5:11]), (UNKNOWN, np.s_[11:]))}  # kept: 5, 6
EXPECTED_CLASSES = {
    1: {'100_01', '100_35', '100_55'}, 2: {'100_01', '100_55'}, 3: {'100_55'}, 4: {'100_13', '100_55'},
    5: {'100_13', '200_00'}, 6: {'100_24', '200_00'}}


def _mask_image(tiles, base):
    mask = np.zeros((CELL * GRID, CELL * GRID, 3), np.uint8)
    mask[:] = base
    for (i, j), t in tiles.items():
        mask[i * CELL:(i + 1) * CELL, j * CELL:(j + 1) * CELL] = t
    return mask


def _write_pair(folder: Path, image_id: str, mask_rgb: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    h, w = mask_rgb.shape[:2]
    image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 2)
    cv2.imwrite(str(folder / f'{image_id}_sat.jpg'), image)
    Image.fromarray(mask_rgb).save(folder / f'{image_id}_mask.png')


@pytest.fixture
def deepglobe_src(tmp_path):
    src = tmp_path / 'train'
    src.mkdir()
    _write_pair(src, '100', _mask_image(TILES_100, FOREST), seed=1)
    _write_pair(src, '200', _mask_image(TILES_200, BARREN), seed=2)
    (src / 'metadata.csv').write_text('ignored\n')
    return src


def _class_dir(root, cls):
    return root / 'Deepglobe' / '04_train_cat' / str(cls) / 'test'


def test_deepglobe_parser_defaults():
    args = deepglobe.build_parser().parse_args(['src', 'dst'])
    assert (args.tile, args.grid, args.min_frac) == (408, 6, 0.048)


def test_deepglobe_filter_unit():
    codes = deepglobe.pack_rgb(_first_pixels(12, WATER))
    assert not deepglobe.keep_tile(deepglobe.colour_counts(codes)[1], codes.size)
    codes = deepglobe.pack_rgb(_first_pixels(13, WATER))
    colours, counts = deepglobe.colour_counts(codes)
    assert deepglobe.keep_tile(counts, codes.size)
    assert deepglobe.classes_present(colours) == [4, 5]
    single = deepglobe.pack_rgb(_tile())
    assert not deepglobe.keep_tile(deepglobe.colour_counts(single)[1], single.size, min_frac=0.0)
    # the official denominator: 408 x 408 = 166464 pixels, strictly more than 4.8 % (7991 px)
    assert deepglobe.keep_tile(np.array([7991, 166464 - 7991]), 166464)
    assert not deepglobe.keep_tile(np.array([7990, 166464 - 7990]), 166464)


def test_deepglobe_layout_and_masks(deepglobe_src, tmp_path):
    out = tmp_path / 'data'
    summary = prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, progress=False)
    assert (summary.images, summary.tiles, summary.kept) == (2, 72, 7)
    assert summary.class_counts == {c: len(v) for c, v in EXPECTED_CLASSES.items()}
    assert summary.image_tiles == 6  # (4, 0) is kept but belongs to no class

    sources = {i: (cv2.imread(str(deepglobe_src / f'{i}_sat.jpg')),
                   np.array(Image.open(deepglobe_src / f'{i}_mask.png'))) for i in ('100', '200')}
    for cls, expected in EXPECTED_CLASSES.items():
        d = _class_dir(out, cls)
        assert sorted(os.listdir(d / 'origin')) == sorted(f'{s[:3]}_sat_{s[4:]}.jpg' for s in expected)
        assert sorted(os.listdir(d / 'groundtruth')) == sorted(f'{s[:3]}_mask_{s[4:]}.png' for s in expected)
        listed = (out / 'Deepglobe' / '04_train_cat' / f'{cls}.txt').read_text().split()
        assert listed == sorted(f'{s[:3]}_mask_{s[4:]}' for s in expected)
        for stem in expected:
            image_id, i, j = stem[:3], int(stem[4]), int(stem[5])
            window = np.s_[i * CELL:(i + 1) * CELL, j * CELL:(j + 1) * CELL]
            src_image, src_mask = sources[image_id]
            # binary mask: 255 exactly on the class colour, single channel
            mask = Image.open(d / 'groundtruth' / f'{image_id}_mask_{i}{j}.png')
            assert mask.mode == 'L'
            want = np.all(src_mask[window] == deepglobe.CLASSES[cls][1], axis=-1)
            np.testing.assert_array_equal(np.array(mask), np.where(want, 255, 0))
            # image tile: the bytes of one OpenCV quality-95 encoding of the crop, as official step 1
            ok, official = cv2.imencode('.jpg', src_image[window])
            assert (d / 'origin' / f'{image_id}_sat_{i}{j}.jpg').read_bytes() == official.tobytes()


def test_deepglobe_class_folders_match_official_bgr_reading(deepglobe_src, tmp_path):
    """The official matched cv2 BGR pixels against these triplets; folders must agree with it."""
    official_triplets = [[0, 255, 255], [255, 255, 0], [255, 0, 255], [0, 255, 0], [255, 0, 0], [255, 255, 255]]
    out = tmp_path / 'data'
    prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, progress=False)
    for image_id, tiles in (('100', TILES_100), ('200', TILES_200)):
        bgr = cv2.imread(str(deepglobe_src / f'{image_id}_mask.png'))
        for i, j in tiles:
            tile = bgr[i * CELL:(i + 1) * CELL, j * CELL:(j + 1) * CELL].reshape(-1, 3)
            colours, counts = np.unique(tile, axis=0, return_counts=True)
            if len(colours) < 2 or counts.min() / tile.shape[0] <= 0.048:
                continue
            for label, triplet in enumerate(official_triplets):
                in_official = bool(np.any(np.all(tile == triplet, axis=-1)))
                ours = (_class_dir(out, label + 1) / 'groundtruth' / f'{image_id}_mask_{i}{j}.png').exists()
                assert ours == in_official, (image_id, i, j, label + 1)


def test_deepglobe_link_and_overwrite(deepglobe_src, tmp_path):
    out = tmp_path / 'data'
    prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, progress=False)
    with pytest.raises(ConversionError, match='--overwrite'):
        prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, progress=False)
    prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, link=True, overwrite=True, progress=False)
    a, b = _class_dir(out, 1) / 'origin' / '100_sat_55.jpg', _class_dir(out, 4) / 'origin' / '100_sat_55.jpg'
    assert os.path.samefile(a, b)


def test_deepglobe_errors_name_the_files(deepglobe_src, tmp_path):
    out = tmp_path / 'data'
    (deepglobe_src / '300_sat.jpg').write_bytes((deepglobe_src / '100_sat.jpg').read_bytes())
    with pytest.raises(ConversionError, match='300_sat.jpg'):
        prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, progress=False)
    (deepglobe_src / '300_sat.jpg').unlink()

    (deepglobe_src / '200_mask.png').write_bytes(b'not a png')
    with pytest.raises(ConversionError, match='200_mask.png'):
        prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, overwrite=True, progress=False)

    Image.new('RGB', (CELL * GRID, CELL * GRID - 8)).save(deepglobe_src / '200_mask.png')
    with pytest.raises(ConversionError, match=r'size mismatch: .*200_sat\.jpg.*200_mask\.png'):
        prepare_deepglobe(deepglobe_src, out, tile=CELL, grid=GRID, overwrite=True, progress=False)

    with pytest.raises(ConversionError, match=r'100_sat\.jpg is 96x96, expected 2448x2448'):
        prepare_deepglobe(deepglobe_src, out, overwrite=True, progress=False)
    with pytest.raises(ConversionError, match='no \\*_sat.jpg images'):
        prepare_deepglobe(tmp_path / 'data', out, overwrite=True, progress=False)
    with pytest.raises(ConversionError, match='grid'):
        prepare_deepglobe(deepglobe_src, out, grid=11, progress=False)


def test_deepglobe_real_geometry(tmp_path):
    """One 2448 x 2448 pair with the default 6 x 6 x 408 cut."""
    src = tmp_path / 'train'
    src.mkdir()
    mask = np.zeros((2448, 2448, 3), np.uint8)
    mask[:] = AGRI
    mask[:, 3 * 408 + 204:] = URBAN  # only the tiles of column 3 hold two colours
    ramp = np.linspace(0, 255, 2448, dtype=np.uint8)
    cv2.imwrite(str(src / '999_sat.jpg'), np.dstack([np.tile(ramp, (2448, 1))] * 3))
    Image.fromarray(mask).save(src / '999_mask.png')
    summary = prepare_deepglobe(src, tmp_path / 'data', progress=False)
    assert (summary.tiles, summary.kept) == (36, 6)
    assert summary.class_counts == {1: 6, 2: 6, 3: 0, 4: 0, 5: 0, 6: 0}
    names = sorted(os.listdir(_class_dir(tmp_path / 'data', 2) / 'origin'))
    assert names == [f'999_sat_{i}3.jpg' for i in range(6)]
    tile = Image.open(_class_dir(tmp_path / 'data', 2) / 'origin' / '999_sat_03.jpg')
    gt = np.array(Image.open(_class_dir(tmp_path / 'data', 2) / 'groundtruth' / '999_mask_03.png'))
    assert tile.size == gt.shape == (408, 408)
    assert (gt[:, :204] == 0).all() and (gt[:, 204:] == 255).all()


def test_deepglobe_cli(deepglobe_src, tmp_path, capsys):
    res = run_tool('deepglobe', deepglobe_src, tmp_path / 'data', '--tile', CELL, '--grid', GRID)
    assert res.returncode == 0, res.stderr
    assert '72 tiles; 7 kept' in res.stdout
    for cls, expected in EXPECTED_CLASSES.items():
        name = deepglobe.CLASSES[cls][0]
        assert any(line.split()[:2] == [str(cls), name] and line.split()[-1] == str(len(expected))
                   for line in res.stdout.splitlines()), res.stdout
    assert '2/2' in res.stderr  # tqdm progress
    argv = [str(deepglobe_src), str(tmp_path / 'data'), '--tile', str(CELL), '--grid', str(GRID)]
    assert deepglobe.main(argv) == 1  # output exists: refused
    assert '--overwrite' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# ISIC
# ---------------------------------------------------------------------------------------------

ISIC_ROWS = {'ISIC_0000000': 'nevus', 'ISIC_0000001': 'nevus', 'ISIC_0000002': 'melanoma',
             'ISIC_0000003': 'seborrheic_keratosis', 'ISIC_0000004': 'nevus', 'ISIC_0000005': 'melanoma'}
ISIC_SPLIT = {1: ['ISIC_0000000', 'ISIC_0000001', 'ISIC_0000004'], 2: ['ISIC_0000003'],
              3: ['ISIC_0000002', 'ISIC_0000005']}


@pytest.fixture
def isic_src(tmp_path):
    src = tmp_path / 'download'
    inp, gt = src / isic.IMAGE_DIR, src / isic.MASK_DIR
    inp.mkdir(parents=True)
    gt.mkdir()
    for k, image_id in enumerate(ISIC_ROWS):
        Image.new('RGB', (6, 4), (k, 0, 0)).save(inp / f'{image_id}.jpg')
        Image.new('L', (6, 4), 255).save(gt / f'{image_id}_segmentation.png')
    (inp / 'ATTRIBUTION.txt').write_text('x')
    csv = tmp_path / 'class_id.csv'
    csv.write_text('ID,Class\r\n' + ''.join(f'{i},{c}\r\n' for i, c in ISIC_ROWS.items()))
    return src, csv


def _isic_listing(isic_dir: Path):
    return {c: sorted(p.stem for p in (isic_dir / isic.IMAGE_DIR / str(c)).iterdir()) for c in (1, 2, 3)}


def test_isic_in_place(isic_src):
    src, csv = isic_src
    summary = prepare_isic(src, class_csv=csv)
    assert summary.class_counts == {c: len(v) for c, v in ISIC_SPLIT.items()}
    assert _isic_listing(src) == ISIC_SPLIT
    assert sorted(p.name for p in (src / isic.MASK_DIR).iterdir()) == sorted(
        f'{i}_segmentation.png' for i in ISIC_ROWS)  # masks untouched, no class folders there
    assert (src / isic.IMAGE_DIR / '1' / 'ISIC_0000000.jpg').read_bytes() == \
        (src / isic.IMAGE_DIR / 'ISIC_0000000.jpg').read_bytes()
    assert prepare_isic(src, class_csv=csv).class_counts == summary.class_counts  # re-run is fine


def test_isic_to_data_root_with_links(isic_src, tmp_path):
    src, csv = isic_src
    summary = prepare_isic(src, tmp_path / 'data', class_csv=csv, link=True)
    out = tmp_path / 'data' / 'ISIC'
    assert _isic_listing(out) == ISIC_SPLIT and summary.masks_placed == 6
    image = out / isic.IMAGE_DIR / '3' / 'ISIC_0000005.jpg'
    assert image.is_symlink() and image.resolve() == (src / isic.IMAGE_DIR / 'ISIC_0000005.jpg').resolve()
    assert (out / isic.MASK_DIR / 'ISIC_0000005_segmentation.png').is_file()


def test_isic_errors(isic_src, tmp_path):
    src, csv = isic_src
    (src / isic.IMAGE_DIR / 'ISIC_0000003.jpg').unlink()
    (src / isic.MASK_DIR / 'ISIC_0000004_segmentation.png').unlink()
    with pytest.raises(ConversionError) as e:
        prepare_isic(src, class_csv=csv)
    assert 'ISIC_0000003.jpg' in str(e.value) and 'ISIC_0000004_segmentation.png' in str(e.value)
    assert not (src / isic.IMAGE_DIR / '1').exists()  # nothing written

    bad = tmp_path / 'bad.csv'
    bad.write_text('ID,Class\nISIC_0000000,basal_cell\n')
    with pytest.raises(ConversionError, match='bad.csv:2'):
        prepare_isic(src, class_csv=bad)
    with pytest.raises(ConversionError, match=isic.IMAGE_DIR):
        prepare_isic(tmp_path / 'nowhere', class_csv=csv)


def test_isic_stray_images(isic_src):
    src, csv = isic_src
    prepare_isic(src, class_csv=csv)
    stray = src / isic.IMAGE_DIR / '1' / 'ISIC_0000002.jpg'
    stray.write_bytes(b'x')
    with pytest.raises(ConversionError, match='ISIC_0000002.jpg'):
        prepare_isic(src, class_csv=csv)
    prepare_isic(src, class_csv=csv, overwrite=True)
    assert _isic_listing(src) == ISIC_SPLIT


def test_isic_shipped_csv():
    classes = isic.read_class_csv(isic.default_class_csv())
    counts = {c: sum(v == c for v in classes.values()) for c in (1, 2, 3)}
    assert counts == isic.EXPECTED_COUNTS


def test_isic_cli(isic_src, tmp_path):
    src, csv = isic_src
    res = run_tool('isic', src, tmp_path / 'data', '--class-csv', csv)
    assert res.returncode == 0, res.stderr
    assert '6 images sorted' in res.stdout
    for line in ('1  nevus                 3', '2  seborrheic_keratosis  1', '3  melanoma              2'):
        assert line in res.stdout
    assert _isic_listing(tmp_path / 'data' / 'ISIC') == ISIC_SPLIT


# ---------------------------------------------------------------------------------------------
# Chest X-ray
# ---------------------------------------------------------------------------------------------

def _png(path: Path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('L', size, 128).save(path)


@pytest.fixture
def kaggle_lung(tmp_path):
    """Kaggle's layout: 'Lung Segmentation' with a space, Montgomery masks without _mask."""
    base = tmp_path / 'data' / 'Lung Segmentation'
    for stem in ('CHNCXR_0001_0', 'CHNCXR_0002_1', 'CHNCXR_0003_0', 'MCUCXR_0001_0', 'MCUCXR_0002_1'):
        _png(base / 'CXR_png' / f'{stem}.png')
    for name in ('CHNCXR_0001_0_mask.png', 'CHNCXR_0002_1_mask.png', 'MCUCXR_0001_0.png', 'MCUCXR_0002_1.png'):
        _png(base / 'masks' / name)
    (base / 'masks' / 'notes.txt').write_text('not read by the loader')
    return tmp_path / 'data'


def test_chestxray_reports_without_fixing(kaggle_lung, capsys):
    report = check_chestxray(kaggle_lung)
    assert not report.ok
    assert report.base_to_rename == (kaggle_lung / 'Lung Segmentation', kaggle_lung / 'LungSegmentation')
    assert [(a.name, b.name) for a, b in report.unsuffixed] == [
        ('MCUCXR_0001_0.png', 'MCUCXR_0001_0_mask.png'), ('MCUCXR_0002_1.png', 'MCUCXR_0002_1_mask.png')]
    assert (report.images, report.masks, report.unmasked_images) == (5, 4, 1)
    assert (kaggle_lung / 'Lung Segmentation' / 'masks' / 'MCUCXR_0001_0.png').exists()  # untouched
    assert chestxray.main([str(kaggle_lung)]) == 1
    out = capsys.readouterr().out
    assert 'Lung Segmentation' in out and 'MCUCXR_0002_1.png -> MCUCXR_0002_1_mask.png' in out
    assert 'NOT OK' in out


def test_chestxray_cli_fix(kaggle_lung):
    res = run_tool('chestxray', kaggle_lung, '--fix')
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'renamed 2 Montgomery-style mask(s)' in res.stdout and 'OK: every mask' in res.stdout
    masks = kaggle_lung / 'LungSegmentation' / 'masks'
    assert not (kaggle_lung / 'Lung Segmentation').exists()
    assert sorted(p.name for p in masks.glob('*.png')) == [
        'CHNCXR_0001_0_mask.png', 'CHNCXR_0002_1_mask.png', 'MCUCXR_0001_0_mask.png', 'MCUCXR_0002_1_mask.png']
    report = check_chestxray(kaggle_lung)
    assert report.ok and not report.renamed


def test_chestxray_unfixable_problems(kaggle_lung):
    masks = kaggle_lung / 'Lung Segmentation' / 'masks'
    _png(masks / 'CHNCXR_0009_0_mask.png')      # image missing
    _png(masks / 'random.png')                  # neither suffixed nor named after an image
    _png(masks / 'MCUCXR_0002_1_mask.png')      # rename target already there
    _png(masks / 'CHNCXR_0001_0_mask.png', size=(4, 4))  # size differs: warning only
    report = check_chestxray(kaggle_lung, fix=True)
    assert not report.ok
    assert [p.name for p in report.orphans] == ['CHNCXR_0009_0_mask.png']
    assert [p.name for p in report.unknown] == ['random.png']
    assert [a.name for a, _ in report.conflicts] == ['MCUCXR_0002_1.png']
    assert len(report.size_mismatches) == 1 and 'CHNCXR_0001_0_mask.png' in report.size_mismatches[0]
    text = chestxray.format_report(report)
    assert 'CHNCXR_0009_0_mask.png' in text and 'random.png' in text and 'NOT OK' in text


def test_chestxray_missing_folders(tmp_path):
    with pytest.raises(ConversionError, match='LungSegmentation not found'):
        check_chestxray(tmp_path)
    (tmp_path / 'LungSegmentation' / 'CXR_png').mkdir(parents=True)
    with pytest.raises(ConversionError, match='masks'):
        check_chestxray(tmp_path)
