# Puts the repository's virtual environment first on PATH (made by tools/setup.sh).
SPEECHKIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export PATH="$SPEECHKIT_ROOT/.venv/bin:$PATH"
export PYTHONUNBUFFERED=1
