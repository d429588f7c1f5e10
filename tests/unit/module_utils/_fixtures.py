"""Where the nexusctl-made fixtures live (tests/fixtures; see its README for where they came from)."""

from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]
_CANDIDATES = [_REPO / 'tests' / 'fixtures']

BACKUP_PASSWORD = 'fixture-backup-password'
KEYRING_PASSWORD = 'fixture-keyring-password'
LIVE_SECRETS = 12


def fixture_path(name):
    for directory in _CANDIDATES:
        path = directory / name
        if path.exists():
            return str(path)
    raise FileNotFoundError('fixture %s not found in %s' % (name, ', '.join(map(str, _CANDIDATES))))


NEXUSCTL_BACKUP = fixture_path('nexusctl-backup.tar.gz.enc')
