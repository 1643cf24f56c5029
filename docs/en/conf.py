"""Sphinx configuration of the ifa-mmseg documentation.

Build (the requirements are docs/requirements.txt), from the repository root:

    python -m sphinx -W -b html docs/en build/docs

The pages are Markdown (myst-parser). Four of them live outside docs/en, where the code, the tools' output
and the OpenMMLab layout name them (see MIRRORS); the site shows each through a one-line {include} stub, and
links are written as on GitHub (relative to the file that holds them). ``_rewrite`` maps those links onto the
site: a link to a mirrored file goes to its stub, and a link inside an included file is made relative to the
stub that includes it.
"""
import os
import re

SRC = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(SRC))

project = 'ifa-mmseg'
author = 'ifa-mmseg contributors'
copyright = '2024-2026, ifa-mmseg contributors'

extensions = ['myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_title = 'ifa-mmseg'
myst_heading_anchors = 4  # GitHub-style anchors for the headings of levels 1-4, as the Markdown links use

# stub page (docname under docs/en) -> the file it includes (relative to the repository root)
MIRRORS = {
    'model_zoo': 'configs/ifa/README.md',
    'model_zoo_hsnet': 'configs/hsnet/README.md',
    'model_zoo_patnet': 'configs/patnet/README.md',
    'differences': 'docs/differences.md',
    'appendix/benchmark_notes': 'docs/benchmarks.md',
    'appendix/demo_runs': 'docs/demo.md',
}
STUB_OF = {os.path.join(ROOT, path): os.path.join(SRC, doc + '.md') for doc, path in MIRRORS.items()}
LINK = re.compile(r'(\]\()([^)\s]+)(\))')  # the target of a Markdown link or image


def _rewrite(text: str, file_dir: str, doc_dir: str) -> str:
    """Relative link targets of a file in file_dir, rewritten for the page built in doc_dir."""

    def sub(match):
        target = match.group(2)
        if target.startswith('#') or re.match(r'[A-Za-z][A-Za-z0-9+.-]*:', target):
            return match.group(0)
        path, sep, anchor = target.partition('#')
        full = os.path.normpath(os.path.join(file_dir, path))
        if not os.path.exists(full):
            return match.group(0)  # not a link to a file (e.g. code); tools/misc/check_docs.py checks real links
        new = os.path.relpath(STUB_OF.get(full, full), doc_dir).replace(os.sep, '/')
        return match.group(1) + new + sep + anchor + match.group(3)

    return LINK.sub(sub, text)


def _on_source_read(app, docname, source):
    doc_dir = os.path.dirname(os.path.join(SRC, docname))
    source[0] = _rewrite(source[0], doc_dir, doc_dir)


def _on_include_read(app, relative_path, parent_docname, content):
    included = os.path.normpath(os.path.join(SRC, relative_path))
    stubs = [stub for path, stub in STUB_OF.items() if path == included]
    if stubs:
        content[0] = _rewrite(content[0], os.path.dirname(included), os.path.dirname(stubs[0]))


def setup(app):
    app.connect('source-read', _on_source_read)
    app.connect('include-read', _on_include_read)
