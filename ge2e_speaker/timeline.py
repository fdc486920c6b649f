"""Who speaks when: one recording's partial embeddings against reference speakers, as
Inference.py --timeline writes them (timeline.tsv, timeline.png) and Resemblyzer's diarization
demo draws them. Speakers come from folders (one per speaker, or a folder of speaker folders)
or from single files, each named by its folder or file name.
"""
import os

import numpy as np

from . import audio
from .embedding import normalise
from .inputs import read_input


class TimelineError(ValueError):
    """A reference that names no speaker; str is one line."""


def reference_files(references: list, log=print) -> dict:
    """--speakers paths -> {speaker name: [audio files]}: a file is a speaker named by its stem;
    a folder of audio files is one speaker named by the folder; a folder of folders gives a
    speaker per folder below it (inputs.read_input's labels)."""
    speakers = {}
    for reference in references:
        if os.path.isfile(reference):
            speakers.setdefault(os.path.splitext(os.path.basename(reference))[0], []).append(reference)
            continue
        if not os.path.isdir(reference):
            raise TimelineError(f'{reference}: no such speaker file or folder; give audio files or folders of them')
        paths, labels = read_input(reference, log)
        if not paths:
            raise TimelineError(f'{reference}: no audio files in it ({", ".join(audio.AUDIO_EXTENSIONS)})')
        for path, label in zip(paths, labels):
            speakers.setdefault(label, []).append(path)
    return speakers


def similarity_over_time(encoder, samples: np.ndarray, sample_rate: int, speakers: dict) -> tuple:
    """Cosine similarity of each partial of a recording to each speaker vector.

    samples: mono [n] at sample_rate; speakers: {name: unit float32 [E]}. Returns (spans, the
    slices of samples each partial covers, [k]; similarities float32 [k, len(speakers)] in the
    order of speakers)."""
    _, partials, spans = encoder.embed_utterance(samples, sample_rate, return_partials=True)   # [k, E]
    vectors = np.stack(list(speakers.values()))                                                  # [S, E]
    return spans, partials @ vectors.T


def write_table(path: str, spans: list, similarities: np.ndarray, names: list, sample_rate: int) -> None:
    """timeline.tsv: start_s, end_s, the similarity to each speaker, and the most similar one."""
    with open(path, 'w', encoding='utf-8') as table:
        table.write('\t'.join(['start_s', 'end_s', *names, 'best']) + '\n')
        for span, row in zip(spans, similarities):
            values = '\t'.join(f'{value:.4f}' for value in row)
            table.write(f'{span.start / sample_rate:.3f}\t{span.stop / sample_rate:.3f}\t{values}\t{names[int(row.argmax())]}\n')


def speaker_vectors(encoder, references: list, log=print) -> dict:
    """{name: unit float32 [E]} of the reference speakers: the mean of each one's files that
    can be embedded (a file that cannot gets one line through log); TimelineError when none can."""
    vectors = {}
    for name, files in reference_files(references, log).items():
        rows = encoder.embed_files(files, on_error=lambda path, reason: log(f'speaker {name}: {path} left out: {reason}'))
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows):
            vectors[name] = normalise(rows.mean(axis=0))
        else:
            log(f'speaker {name}: left out: none of its {len(files)} files can be embedded')
    if not vectors:
        raise TimelineError(f'no reference speaker could be embedded (from {", ".join(references)})')
    return vectors


def write_timeline(encoder, recording: str, references: list, out_dir: str, plot: bool, log=print) -> tuple:
    """timeline.tsv and (with plot) timeline.png of recording against the reference speakers,
    in out_dir. Returns (partials, {speaker: share of the partials where it is the most similar})."""
    speakers = speaker_vectors(encoder, references, log)
    rate = encoder.hp.Sound.Sample_Rate
    try:
        samples = audio.load_audio(recording, rate)
        spans, similarities = similarity_over_time(encoder, samples, rate, speakers)
    except audio.AudioRejected as error:
        raise TimelineError(f'{recording}: {error}') from None
    names = list(speakers)
    write_table(os.path.join(out_dir, 'timeline.tsv'), spans, similarities, names, rate)
    if plot:
        from .plots import save_figure, timeline_figure
        save_figure(timeline_figure(spans, similarities, names, rate, f'{os.path.basename(recording)}: similarity over time'),
                    os.path.join(out_dir, 'timeline.png'))
    best = np.bincount(similarities.argmax(axis=1), minlength=len(names)) / len(spans)
    return len(spans), dict(zip(names, best.tolist()))
