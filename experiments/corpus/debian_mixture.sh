#!/usr/bin/env bash
# Build the four-domain Debian demo corpus (code, docs, lexicon, scripture).
#
#   experiments/corpus/debian_mixture.sh [--out DIR] [--work DIR] [--cap-bytes 8M] [--seed 0]
#                                        [--vocab 8192] [--val-fraction 0.01] [--overwrite]
#
# Fetches Debian packages with `apt-get download` (the only network access), unpacks them with
# `dpkg-deb -x` under --work (nothing is installed), writes a folder per domain capped at
# --cap-bytes of text, and runs `bayesplit corpus build`. Defaults: --work work/corpus/debian,
# --out work/corpus/debian_mixture (both ignored by git). Run from the repository root with the
# project's virtual environment active (or PYTHON=/path/to/python). See README.md here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"

for tool in apt-get dpkg-deb "$python"; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done
"$python" -c "import bayesplit.train.corpus" 2>/dev/null || {
    echo "error: bayesplit (with the train extra) is not importable by $python" >&2; exit 2; }

exec "$python" "$here/debian_mixture.py" "$@"
