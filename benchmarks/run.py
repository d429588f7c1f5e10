"""`make bench`: run every benchmark script in this folder, one after another, and print its figures.

Benchmarks print numbers; they never assert on time (machines here are shared and noisy).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv):
    wanted = set(argv)
    scripts = sorted(p for p in HERE.glob('*.py') if p.name != Path(__file__).name and not p.name.startswith('_'))
    failed = []
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        print('=== %s' % script.stem, flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False).returncode:
            failed.append(script.stem)
    if failed:
        print('benchmarks that failed: %s' % ', '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
