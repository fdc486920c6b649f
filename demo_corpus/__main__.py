"""python -m demo_corpus: the demo corpus's command line (demo_corpus/cli.py)."""
import sys

from demo_corpus.cli import main

sys.exit(main())
