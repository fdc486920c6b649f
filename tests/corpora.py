"""Tiny corpora in the real directory layouts, made of generated voice-like signals.

Each speaker has its own pitch and spectral tilt; each utterance its own syllable rhythm,
with silence before and after so that trimming has work to do.
"""
import os
import shutil
import subprocess

import numpy as np
import soundfile


def voice(speaker: int, utterance: int, seconds: float = 1.6, rate: int = 16000) -> np.ndarray:
    """float32 mono: 0.3 s silence, `seconds` of a harmonic 'voice', 0.3 s silence."""
    rng = np.random.default_rng(1000 * speaker + utterance)
    time = np.arange(int(seconds * rate)) / rate
    pitch = 90 + 23 * speaker + 8 * np.sin(2 * np.pi * (0.7 + 0.1 * utterance) * time)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    tilt = 0.55 + 0.08 * (speaker % 5)
    sound = sum(tilt ** harmonic * np.sin(harmonic * phase) for harmonic in range(1, 12))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * (2.5 + 0.4 * rng.random()) * time))
    sound = 0.25 * sound * envelope / np.abs(sound).max() + 0.002 * rng.standard_normal(time.size)
    silence = np.zeros(int(0.3 * rate))
    return np.concatenate([silence, sound, silence]).astype(np.float32)


def write(path: str, samples: np.ndarray, rate: int, subtype: str = 'PCM_16') -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def vctk_080(root: str, speakers=(225, 226), utterances: int = 3) -> str:
    for speaker in speakers:
        for utterance in range(1, utterances + 1):
            write(f'{root}/wav48/p{speaker}/p{speaker}_{utterance:03d}.wav',
                  voice(speaker - 225, utterance, rate=48000), 48000)
    return root


def vctk_092(root: str, speakers=(225, 226), utterances: int = 3) -> str:
    for speaker in speakers:
        for utterance in range(1, utterances + 1):
            for mic in ('mic1', 'mic2'):
                write(f'{root}/wav48_silence_trimmed/p{speaker}/p{speaker}_{utterance:03d}_{mic}.flac',
                      voice(speaker - 225, utterance, rate=48000), 48000)
    return root


def libritts(root: str, speakers=(19, 26), utterances: int = 3) -> str:
    for index, speaker in enumerate(speakers):
        for utterance in range(1, utterances + 1):
            subset = 'train-clean-100' if utterance % 2 else 'train-other-500'
            write(f'{root}/{subset}/{speaker}/198/{speaker}_198_000000_{utterance:06d}.wav',
                  voice(index + 3, utterance, rate=24000), 24000)
    return root


def cmu_arctic(root: str, speakers=('bdl', 'slt'), utterances: int = 3) -> str:
    for index, speaker in enumerate(speakers):
        for utterance in range(1, utterances + 1):
            write(f'{root}/cmu_us_{speaker}_arctic/wav/arctic_a{utterance:04d}.wav',
                  voice(index + 5, utterance), 16000)
    return root


def voxceleb(root: str, ids=(10001, 10002), videos=('1zcIwhmdeo4', 'GWXujl-xAVM'), utterances: int = 2,
             extension: str = 'wav') -> str:
    """VoxCeleb1 (wav/idNNNNN/<video>/00001.wav) or, with extension m4a, VoxCeleb2's aac/ layout."""
    folder = 'wav' if extension == 'wav' else 'aac'
    for index, identity in enumerate(ids):
        for video in videos:
            for utterance in range(1, utterances + 1):
                path = f'{root}/{folder}/id{identity}/{video}/{utterance:05d}.{extension}'
                samples = voice(index + 7, utterance + 10 * videos.index(video))
                if extension == 'wav':
                    write(path, samples, 16000)
                else:
                    wav = write(path[:-4] + '.tmp.wav', samples, 16000)
                    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-i', wav, '-c:a', 'aac', '-b:a', '64k', path], check=True)
                    os.remove(wav)
    return root


def has_ffmpeg() -> bool:
    return shutil.which('ffmpeg') is not None
