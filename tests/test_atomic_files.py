"""The shared file helpers: audio's audio-file walker, atomic_files' writes and cleanup of half-written files."""
import os

from ge2e_speaker import atomic_files, audio


def test_audio_files_takes_every_extension_audio_names(tmp_path):
    names = ['a/1.wav', 'a/2.FLAC', 'a/b/3.ogg', 'c/4.mp3', 'c/5.m4a', 'c/6.aac', 'c/7.MP4', 'c/notes.txt', 'c/x.wav.tmp-12']
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    found = [os.path.relpath(path, tmp_path) for path in audio.audio_files(str(tmp_path))]
    assert found == sorted(found) == [name for name in sorted(names) if not name.endswith(('.txt', '.tmp-12'))]
    assert set(audio.FFMPEG_EXTENSIONS) <= set(audio.AUDIO_EXTENSIONS)


def test_write_atomically_makes_folders_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'new' / 'folder' / 'file.yaml'
    atomic_files.write_atomically(str(path), 'text: 1\n')
    atomic_files.write_atomically(str(tmp_path / 'bytes.bin'), b'\x00\x01')
    assert path.read_text() == 'text: 1\n' and (tmp_path / 'bytes.bin').read_bytes() == b'\x00\x01'
    assert not [name for _, _, names in os.walk(tmp_path) for name in names if '.tmp-' in name]


def test_remove_temporaries_removes_only_half_written_files(tmp_path):
    for name in ('VCTK/p225/x.wav.tmp-123', 'SYN/S.PICKLE.tmp-9', 'top.tsv.tmp-4', 'VCTK/p225/x.wav', 'keep.tmp-notapid'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    assert atomic_files.remove_temporaries(str(tmp_path)) == 3
    left = sorted(os.path.relpath(os.path.join(folder, name), tmp_path)
                  for folder, _, names in os.walk(tmp_path) for name in names)
    assert left == ['VCTK/p225/x.wav', 'keep.tmp-notapid']
