"""benchmarks/all_pairs.py: every pair of files once, targets by speaker."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_pair_once_from_a_list_and_a_kaldi_dir(tmp_path):
    (tmp_path / 'files.txt').write_text('\ufeffa/1.wav alice\na/2.wav alice\nb/1.wav bob\na/3.wav alice\n')
    data = tmp_path / 'train'
    data.mkdir()
    (data / 'wav.scp').write_text('u1 WAVE/S1/u1.WAV\nu2 WAVE/S1/u2.WAV\nu3 WAVE/S2/u3.WAV\n')
    (data / 'utt2spk').write_text('u1 S1\nu2 S1\nu3 S2\n')
    script = os.path.join(ROOT, 'benchmarks', 'all_pairs.py')
    for source, output, extra in (('-list', 'list_trials.txt', ['--per-speaker', '2']), ('-kaldi', 'kaldi_trials.txt', [])):
        result = subprocess.run([sys.executable, script, source, str(tmp_path / 'files.txt') if source == '-list' else str(data),
                                 '-o', str(tmp_path / output)] + extra, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / 'list_trials.txt').read_text().splitlines() == [
        '1 a/1.wav a/2.wav', '0 a/1.wav b/1.wav', '0 a/2.wav b/1.wav']   # a/3.wav: beyond 2 per speaker
    assert (tmp_path / 'kaldi_trials.txt').read_text().splitlines() == [
        '1 WAVE/S1/u1.WAV WAVE/S1/u2.WAV', '0 WAVE/S1/u1.WAV WAVE/S2/u3.WAV', '0 WAVE/S1/u2.WAV WAVE/S2/u3.WAV']
