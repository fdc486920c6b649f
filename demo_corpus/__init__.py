"""The demo: a speaker corpus of synthetic voices that needs no download, and the settings to train on it.

    python -m demo_corpus -o Demo/Corpus        # what Demo.sh runs

grammar.py      sentences from word lists and templates
voices.py       eSpeak NG's accents and variants, surveyed by ear in numbers; the near-duplicate check
planning.py     speakers, who is held out, and every utterance's settings and file
rendering.py    an utterance synthesised and "recorded" into its wav file
trials.py       the VoxCeleb-style trial list of the held-out speakers
cli.py          the command line
speech_synth.py eSpeak NG as a Python function
Hyper_Parameter_Demo.yaml   the demo's training settings (Demo.sh)
"""
