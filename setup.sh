#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine with Python 3 and pip.
set -euo pipefail
cd "$(dirname "$0")"
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. A torch already
# installed (a CUDA build on a GPU machine, say) is kept.
python -c 'import torch' 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements.txt pytest
# The package itself, editable: import ge2e_speaker and the ge2e-* commands run this checkout.
python -m pip install -q --no-deps -e .
# ffmpeg decodes VoxCeleb2's .m4a; without it only those files are refused.
if ! command -v ffmpeg >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get install -y -qq ffmpeg >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }) \
            || echo "setup.sh: could not install ffmpeg; .m4a files will be refused"
    else
        echo "setup.sh: ffmpeg not found; install it to read VoxCeleb2's .m4a files"
    fi
fi
