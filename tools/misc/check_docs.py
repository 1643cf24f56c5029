"""Check the Markdown pages: their internal links, and the files, configs and options their code blocks name.

    python tools/misc/check_docs.py [PAGE.md ...] [--root ROOT]    # default: every *.md of the repository

Prints ``page:line: problem`` for each problem of these rules, and exits 1 when there is any:
1. links: a relative link or image must name an existing file or folder (relative to its page), and an anchor
   (``page.md#anchor``, ``#anchor``) a heading of that page, as GitHub names them;
2. paths: in a fenced code block, each word that starts with ``configs/``, ``tools/``, ``tests/``, ``ifa_mmseg/``
   or ``docs/``, or names a ``requirements*.txt``, must exist under the root after ``{a,b}`` expansion (words with
   ``<...>``, ``*``, ``$`` or ``...`` are placeholders), and the file of an ``{include}`` block next to its page;
3. options: a command that runs a script of the repository (``python PATH.py``, ``python -m ifa_mmseg.X``,
   ``bash tools/*.sh``, whose arguments go to the Python tool it starts) may only use the long options that its
   ``add_argument`` calls define, followed into the functions it imports from the repository; ``VAR=value``
   before a command is substituted into the block's later ``$VAR``.
Only the standard library is used: the check runs without the project's dependencies.
"""
import argparse
import ast
import functools
import itertools
import os
import re
import shlex
import sys
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_DIRS = {'build', 'work_dirs', 'data', 'checkpoints', 'node_modules', '_build'}
TOP = ('configs', 'tools', 'tests', 'ifa_mmseg', 'docs')
PATH_WORD = re.compile(r'(?<![\w./$-])((?:%s)/(?:\{[^\s{}]*\}|[^\s\'"`,;:()\[\]|{}])*|requirements[\w.-]*\.txt)'
                       % '|'.join(TOP))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
FENCE = re.compile(r'^\s*(`{3,}|~{3,})\s*(.*)$')
SHELL_SPLIT = re.compile(r'\s*(?:;|&&|\|\|)\s*')
PYTHON = re.compile(r'^(?:\S*/)?python(?:3(?:\.\d+)?)?$')


@functools.lru_cache(maxsize=None)
def read_page(path: str) -> Tuple[List[Tuple[int, str]], List[Tuple[int, str, List[str]]], Set[str]]:
    """(prose lines, fenced blocks as (first line, info string, lines), heading anchors) of a Markdown page."""
    prose, blocks, anchors, seen, fence = [], [], set(), {}, None
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f.read().splitlines(), 1):
            match = FENCE.match(line)
            if fence is None and match:
                fence = match.group(1)
                blocks.append((number, match.group(2).strip(), []))
            elif fence is not None:
                closing = line.strip().startswith(fence) and not line.strip().strip(fence[0])
                fence = None if closing else fence
                blocks[-1][2].extend([] if closing else [line])
            else:
                prose.append((number, line))
                heading = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
                if heading:  # GitHub: lower case, punctuation dropped, spaces to hyphens, repeats numbered
                    base = re.sub(r'[^\w\- ]', '', heading.group(1).strip().lower()).replace(' ', '-')
                    anchors.add(f'{base}-{seen[base]}' if base in seen else base)
                    seen[base] = seen.get(base, 0) + 1
    return prose, blocks, anchors


def expand(word: str) -> List[str]:
    """``configs/ifa/x_{1,5}shot.py`` -> both names."""
    parts = re.split(r'\{([^{}]*,[^{}]*)\}', word)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def module_file(module: str, level: int, here: str, root: str) -> Optional[str]:
    """The repository file of an imported module (None for a third-party one)."""
    for _ in range(level - 1):
        here = os.path.dirname(here)
    parts = module.split('.') if module else []
    for base in ([here] if level else [root, here]) if parts else []:
        for candidate in (os.path.join(base, *parts) + '.py', os.path.join(base, *parts, '__init__.py')):
            if os.path.isfile(candidate):
                return candidate
    return None


@functools.lru_cache(maxsize=None)
def parse(path: str, root: str) -> Tuple[ast.Module, dict, dict]:
    """(tree, its functions by name, its names imported from repository modules -> (file, name))."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    imports = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = module_file(node.module or '', node.level, os.path.dirname(path), root)
            imports.update({a.asname or a.name: (source, a.name) for a in node.names if source})
    return tree, funcs, imports


def script_flags(path: str, root: str, names: Optional[List[str]] = None, seen: Optional[set] = None) -> Set[str]:
    """Long options of the argparse parsers in ``path`` (or in its functions ``names``), through imports."""
    seen = set() if seen is None else seen
    tree, funcs, imports = parse(path, root)
    flags, called, roots = set(), set(), [tree] if names is None else []
    for name in names or []:
        if name in funcs:
            roots.append(funcs[name])
        elif name in imports:
            called.add(name)
    for node in (n for r in roots for n in ast.walk(r) if isinstance(n, ast.Call)):
        if isinstance(node.func, ast.Attribute) and node.func.attr == 'add_argument':
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith('--')}
        elif isinstance(node.func, ast.Name):
            called.add(node.func.id)
    for name in called:
        target = (path, name) if name in funcs else imports.get(name)
        if target and target not in seen:
            seen.add(target)
            flags |= script_flags(target[0], root, [target[1]], seen)
    return flags


def commands(lines: List[str]) -> Iterator[Tuple[int, List[str]]]:
    """(line offset, words) of every shell command of a block; continuation lines joined, comments dropped."""
    offset, pending = 0, ''
    for i, line in enumerate(lines):
        offset, line = (i if not pending else offset), line.rstrip()
        pending += line[:-1] + ' ' if line.endswith('\\') else line
        if not line.endswith('\\'):
            for command in SHELL_SPLIT.split(pending):
                try:
                    yield offset, shlex.split(command, comments=True)
                except ValueError:  # not shell (an unbalanced quote): no options to check
                    pass
            pending = ''


def check_command(words: List[str], env: Dict[str, str], root: str) -> Iterator[str]:
    while words and re.match(r'^[A-Za-z_]\w*=', words[0]):
        key, value = words.pop(0).split('=', 1)
        env[key] = value
    words = [re.sub(r'\$\{?(\w+)\}?', lambda m: env.get(m.group(1), m.group(0)), w) for w in words]
    script, args = None, []
    if len(words) > 1 and PYTHON.match(words[0]):
        if words[1] == '-m' and len(words) > 2 and words[2].split('.')[0] == 'ifa_mmseg':
            script, args = module_file(words[2], 0, root, root), words[3:]
        elif words[1].endswith('.py') and words[1].split('/')[0] in TOP:
            script, args = os.path.join(root, words[1]), words[2:]
    elif len(words) > 1 and words[0] == 'bash' and re.match(r'tools/.*\.sh$', words[1]):
        sh = os.path.join(root, words[1])
        with open(sh if os.path.isfile(sh) else os.devnull) as f:
            started = re.findall(r'(tools/\w+\.py)', f.read())
        script, args = (os.path.join(root, started[-1]) if started else None), words[2:]
    if script is None or not os.path.isfile(script):
        return  # not a script of the repository, or a missing one (rule 2 reports it)
    known = script_flags(script, root) | {'--help'}
    for word in args:
        flag = word.lstrip('[(').rstrip('])},|').split('=', 1)[0]
        if re.match(r'^--[A-Za-z]', flag) and flag not in known:
            yield f'{os.path.relpath(script, root)} has no option {flag}'


def check_page(path: str, root: str) -> Iterator[Tuple[int, str]]:
    prose, blocks, _ = read_page(path)
    here = os.path.dirname(path)
    for number, line in prose:
        for target in LINK.findall(re.sub(r'`[^`]*`', '', line)):
            if re.match(r'[A-Za-z][\w+.-]*:', target):  # a URL
                continue
            file, _, anchor = target.partition('#')
            full = os.path.normpath(os.path.join(here, file)) if file else path
            if not os.path.exists(full):
                yield number, f'broken link: {target}'
            elif anchor and full.endswith('.md') and anchor not in read_page(full)[2]:
                yield number, f'broken anchor: {target}'
    for start, info, lines in blocks:
        if info.startswith('{include}'):
            included = info[len('{include}'):].strip()
            if not included or not os.path.isfile(os.path.join(here, included)):
                yield start, f'included file not found: {included}'
            continue
        for i, line in enumerate(lines, start + 1):
            for word in PATH_WORD.findall(line):
                word = word.rstrip('.')
                if not re.search(r'[<>*$]|\.\.\.', word):
                    for name in expand(word):
                        if not os.path.exists(os.path.join(root, name)):
                            yield i, f'no such file or folder: {name}'
        env = {}
        for offset, words in commands(lines):
            for problem in check_command(words, env, root):
                yield start + 1 + offset, problem


def markdown_files(root: str) -> List[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d not in SKIP_DIRS and '.egg-info' not in d)
        found += [os.path.join(folder, f) for f in sorted(files) if f.endswith('.md')]
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Check the links and commands of Markdown pages')
    parser.add_argument('pages', nargs='*', help='pages to check (default: every *.md of the root)')
    parser.add_argument('--root', default=ROOT, help='the repository that commands refer to (default: this one)')
    args = parser.parse_args(argv)
    root, problems = os.path.abspath(args.root), 0
    for page in [os.path.abspath(p) for p in args.pages] or markdown_files(root):
        for number, message in check_page(page, root):
            print(f'{os.path.relpath(page)}:{number}: {message}')
            problems += 1
    print(f'check_docs: {problems} problem(s)' if problems else 'check_docs: ok', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
