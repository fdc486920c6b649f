"""benchmarks/fuzz_decoders.py on a small budget: damaged WAV, FLAC, MP3 and OGG files through
Pattern_Generate.py and Inference.py, each file embedded or named with a reason."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

import fuzz_decoders  # noqa: E402


def test_every_fuzzed_file_has_one_outcome_and_no_run_fails():
    report = fuzz_decoders.fuzz(files=48, seed=1, per_file=5.0, long_files=0, log=lambda message: None)
    assert report['problems'] == []
    for tool, outcomes in report['outcomes'].items():
        assert sum(outcomes.values()) == 48, tool
        by_damage = {}
        for (damage, outcome), count in outcomes.items():
            by_damage.setdefault(damage, set()).add(outcome)
        assert by_damage['intact'] == {'embedded'}, tool                 # the control is never refused
        assert by_damage['random_bytes'] == {'unreadable'}, tool
        assert {'unreadable', 'embedded'} <= set().union(*by_damage.values()), tool


def test_the_checks_catch_a_traceback_a_hang_and_a_file_without_outcome(tmp_path):
    crashed = {'output': 'x\nTraceback (most recent call last):\n  File "a.py"\nValueError: bad', 'code': 1, 'seconds': 1.0}
    problems = fuzz_decoders.check_run('Inference.py', crashed, 10)
    assert problems[0] == 'Inference.py: exit status 1' and 'ValueError: bad' in problems[1]
    assert fuzz_decoders.check_run('Pattern_Generate.py', {'output': '', 'code': None, 'seconds': 10.0}, 10) == [
        'Pattern_Generate.py: still running after 10 s (a hang); stopped']
    reasons = fuzz_decoders.named_reasons(['/d/a.wav', '/d/b.wav'], ['/d/a.wav: unreadable: Error opening', 'summary: 1'])
    assert reasons == {'/d/a.wav': ['unreadable: Error opening'], '/d/b.wav': []}
