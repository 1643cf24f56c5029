"""The checkpoint a resumed run continues from, and checkpoint files that are whole or absent.

mmengine resumes from the path written in ``WORK_DIR/last_checkpoint``, word for word: a missing
or empty file, a work dir moved since, or a partly written checkpoint stops or misleads the resume.
Here the work dir's own checkpoint files decide and ``last_checkpoint`` is only compared with them.
"""
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

# Appended to a checkpoint's name while it is written: no CheckpointHook name (``filename_tmpl``) ends so,
# hence neither the resume, max_keep_ckpts nor last_checkpoint ever takes the partial file.
PARTIAL_SUFFIX = '.part'


def checkpoint_template(cfg: Config) -> str:
    """The name the config's CheckpointHook gives its checkpoints: ``epoch_{}.pth`` when it saves by epoch
    (all our configs), ``iter_{}.pth`` otherwise, or its ``filename_tmpl``."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    return hook.get('filename_tmpl') or ('epoch_{}.pth' if hook.get('by_epoch', True) else 'iter_{}.pth')


def list_checkpoints(work_dir: str, template: str) -> List[str]:
    """The files of ``work_dir`` named by ``template``, the highest epoch or iteration first."""
    head, tail = re.split(r'\{[^{}]*\}', template)
    pattern = re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))
    steps = {}
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else ():
        match = pattern.fullmatch(name)
        if match:
            steps[name] = int(match.group(1))
    return [osp.join(work_dir, name) for name in sorted(steps, key=steps.get, reverse=True)]


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``torch.load`` cannot read ``path``, or ``None`` when it looks whole.

    torch.save writes a zip archive whose central directory comes last, so an empty or partly
    written file has none; reading the directory costs a few kilobytes, not the whole file.
    """
    if osp.isfile(path) and osp.getsize(path) == 0:
        return 'it is empty (0 bytes)'
    try:
        zipfile.ZipFile(path).close()
    except (OSError, zipfile.BadZipFile) as err:
        return f'it is truncated or not a checkpoint ({type(err).__name__}: {err})'
    return None


def find_resume_checkpoint(work_dir: str, template: str) -> Optional[str]:
    """The newest readable checkpoint of ``work_dir`` named by ``template``, ``None`` when there is none.

    Newer unreadable ones are skipped with a warning naming each; a ``last_checkpoint`` that names
    another file (or none) is reported. Raises :class:`RuntimeError` when the work dir holds
    checkpoints but none is readable, rather than starting over.
    """
    found = list_checkpoints(work_dir, template)
    problems = []
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            _report_pointer(work_dir, path)
            return path
        print_log(f'resume: skipping {path}: {problem}', logger='current', level=logging.WARNING)
        problems.append(f'{path}: {problem}')
    if problems:
        raise RuntimeError(f'resume: no readable checkpoint in {work_dir}:\n' + '\n'.join(problems))
    return None


def _report_pointer(work_dir: str, chosen: str) -> None:
    """Log what ``WORK_DIR/last_checkpoint`` says when it is not simply ``chosen``: the decision stays with
    the folder, whose files may be newer than the pointer (a kill after a save) or moved with it."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        said = f'{pointer} is missing'
    else:
        with open(pointer) as f:
            named = f.read().strip()
        here = osp.join(work_dir, osp.basename(named))  # where a moved work dir keeps the named file
        if not named:
            said = f'{pointer} is empty'
        elif osp.realpath(osp.dirname(named)) == osp.realpath(work_dir):
            if osp.realpath(named) == osp.realpath(chosen):
                return
            said = f'{pointer} names {named}'
        elif osp.isfile(here):
            said = f'{pointer} names {named}, in another folder (the work dir was moved or copied; {here} is here)'
        else:
            said = f'{pointer} names {named}, in another folder, and the work dir has no such file'
    print_log(f'resume: {said}; resuming from {chosen}, the newest readable checkpoint of the work dir',
              logger='current', level=logging.WARNING)


def replace_durably(partial: str, path: str) -> None:
    """Move the written file ``partial`` onto ``path`` so that ``path`` is, even after a crash or a power
    cut, either its previous content or the whole new one: flush the file, rename, flush the folder."""
    with open(partial, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(partial, path)
    folder = os.open(osp.dirname(path) or '.', os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
