"""Corpora on disk -> mel pattern pickles + METADATA.PICKLE: the seed's entry point for
ge2e_speaker/pattern_generate.py (installed as the ge2e-pattern-generate command;
docs/pattern_generate.md).

    python Pattern_Generate.py -vctk /data/VCTK-Corpus -libri /data/LibriTTS -vc1t /data/vox1_test
"""
import sys

from ge2e_speaker.pattern_generate import main

if __name__ == '__main__':
    sys.exit(main())
