"""The documentation: tools/misc/check_docs.py passes on the real pages and catches what it is for; the README
keeps the commands that CI runs."""
import os
import re
import subprocess
import sys

from tests.helpers.scripts import ROOT

CHECK = os.path.join(ROOT, 'tools', 'misc', 'check_docs.py')


def run_check(*args):
    return subprocess.run([sys.executable, CHECK, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_real_pages_pass():
    proc = run_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'check_docs: ok' in proc.stderr


def test_a_bad_page_fails_with_each_problem(tmp_path):
    (tmp_path / 'other.md').write_text('# Other page\n\n## A section\n')
    page = tmp_path / 'bad.md'
    page.write_text('\n'.join([
        '# Bad page',                                                                          # 1
        '[fine](other.md#a-section), [also fine](#bad-page), [web](https://example.org/x.md)',  # 2
        'A [broken link](missing.md) and a [broken anchor](other.md#no-such-section).',         # 3
        '```bash',                                                                             # 4
        'python tools/train.py configs/ifa/no_such_config.py --work-dir w',                    # 5
        'python tools/test.py configs/ifa/deepglobe_{1,9}shot.py CKPT --show-dir v \\',        # 6
        '    [--no-such-flag] --num-vis 2   # continued line',                                  # 7
        'bash tools/dist_train.sh configs/ifa/deepglobe_1shot.py 8 --resume --bogus',          # 8
        'B=tools/analysis_tools/get_flops.py; python $B configs/demo/deepglobe.py --size 64 --nope',  # 9
        'python tools/misc/print_config.py work_dirs/<config>/x.py --unresolved',              # 10
        '```',                                                                                 # 11
        '```python',                                                                           # 12
        "FewShotInferencer('configs/ifa/missing.py', 'epoch_20.pth')",                         # 13
        '```',                                                                                 # 14
    ]) + '\n')
    proc = run_check(str(page))
    assert proc.returncode == 1
    problems = sorted(re.findall(r'bad\.md:(\d+): (.*)', proc.stdout), key=lambda p: int(p[0]))
    assert problems == [
        ('3', 'broken link: missing.md'),
        ('3', 'broken anchor: other.md#no-such-section'),
        ('5', 'no such file or folder: configs/ifa/no_such_config.py'),
        ('6', 'no such file or folder: configs/ifa/deepglobe_9shot.py'),
        ('6', 'tools/test.py has no option --no-such-flag'),
        ('8', 'tools/train.py has no option --bogus'),
        ('9', 'tools/analysis_tools/get_flops.py has no option --nope'),
        ('13', 'no such file or folder: configs/ifa/missing.py'),
    ], proc.stdout


def test_the_readme_keeps_the_commands_that_ci_runs():
    with open(os.path.join(ROOT, 'README.md')) as f:
        readme = f.read()
    with open(os.path.join(ROOT, '.ci', 'run')) as f:
        ci = [line.strip() for line in f if not line.lstrip().startswith('#')]
    setup = 'python3 -m venv .venv && .venv/bin/pip install -r requirements.txt'
    test = '.venv/bin/python -m pytest -q tests'
    assert setup in readme and setup in ci
    assert f'```bash\n{test}\n```' in readme and test in ci
    assert '.venv/bin/python tools/demo.py' in readme
    with open(os.path.join(ROOT, 'docs', 'en', 'get_started.md')) as f:
        docs_build = [line for line in f if 'sphinx' in line]
    assert docs_build and all(line.strip() in ci for line in docs_build if line.startswith('.venv/'))
