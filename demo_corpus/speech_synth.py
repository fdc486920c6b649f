"""eSpeak NG as a Python function: text -> float32 samples, through libespeak-ng's C API.

The library and its voice data come from the `espeakng-loader` wheel, so nothing beyond pip is
needed. The library runs in synchronous retrieval mode: espeak_Synth returns when the text is
spoken, every buffer having passed through our callback.

Every call loads the library afresh and unloads it afterwards (about 2 ms). eSpeak NG keeps
synthesis state in static variables (the flutter phase, the glottal wave phase, a noise generator
seeded from the clock; the Klatt 6 voices draw noise from the C library's rand()) that no API call resets, so a library kept loaded gives different samples
for the same text depending on what it spoke before. Loaded per call and seeded, the same arguments
give the same samples in any process, whatever ran before: a corpus built by worker processes is
reproducible, and a resumed build equals an uninterrupted one. It also makes the module safe
after fork: no library state is carried into a child. (Should another module of the process hold
libespeak-ng loaded too, the unload is a no-op and that guarantee is lost: synthesis still works.)

    from demo_corpus import speech_synth
    samples, sample_rate = speech_synth.synthesize('Hello there.', voice='en-us+f2', rate=160)

A voice is '<language>[+<variant>]': a language or accent file under espeak-ng-data/lang
('en', 'en-us', 'en-gb-scotland', ...) and optionally a variant under espeak-ng-data/voices/!v
('m3', 'f2', 'klatt', 'whisper', ...).
"""
import _ctypes
import ctypes
import functools
import os
import threading

import numpy as np

# speak_lib.h (API revision 12)
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
EE_OK = 0
POS_CHARACTER = 1
RATE, VOLUME, PITCH, RANGE, WORDGAP = 1, 2, 3, 4, 7
RATE_MINIMUM, RATE_MAXIMUM = 80, 450      # words per minute
BUFFER_MS = 200                           # callback buffer length; bigger buffers, fewer calls


class SynthesisError(RuntimeError):
    """eSpeak NG could not start, load a voice, or speak a text; str(error) says which."""


class _EventId(ctypes.Union):
    _fields_ = [('number', ctypes.c_int), ('name', ctypes.c_char_p), ('string', ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT; only passed through here, but its layout is declared for the callback's type."""
    _fields_ = [('type', ctypes.c_int), ('unique_identifier', ctypes.c_uint), ('text_position', ctypes.c_int),
                ('length', ctypes.c_int), ('audio_position', ctypes.c_int), ('sample', ctypes.c_int),
                ('user_data', ctypes.c_void_p), ('id', _EventId)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def data_path() -> str:
    """The espeak-ng-data folder shipped by espeakng-loader."""
    import espeakng_loader
    return espeakng_loader.get_data_path()


@functools.lru_cache(maxsize=None)
def variants() -> tuple:
    """Names of the voice variants (files of espeak-ng-data/voices/!v), sorted."""
    folder = os.path.join(data_path(), 'voices', '!v')
    return tuple(sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))))


@functools.lru_cache(maxsize=None)
def languages() -> tuple:
    """Names of the languages and accents (files under espeak-ng-data/lang, lower-cased), sorted."""
    found = set()
    for folder, _, files in os.walk(os.path.join(data_path(), 'lang')):
        found.update(name.lower() for name in files)
    return tuple(sorted(found))


def _unload(library) -> None:
    handle = library._handle
    if hasattr(_ctypes, 'dlclose'):
        _ctypes.dlclose(handle)
    else:   # Windows
        _ctypes.FreeLibrary(handle)


def _load():
    """libespeak-ng, freshly loaded (its static state initialised) and typed."""
    import espeakng_loader
    try:
        library = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as error:
        raise SynthesisError(f'cannot load libespeak-ng: {error}') from None
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_Initialize.restype = ctypes.c_int
    library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    library.espeak_SetSynthCallback.restype = None
    library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    library.espeak_ng_SetRandSeed.restype = ctypes.c_int
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetVoiceByName.restype = ctypes.c_int
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_SetParameter.restype = ctypes.c_int
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    library.espeak_Synth.restype = ctypes.c_int
    library.espeak_Terminate.restype = ctypes.c_int
    return library


def check_voice(voice: str) -> None:
    """Raise SynthesisError unless voice names an existing language and (optional) variant."""
    language, _, variant = voice.partition('+')
    if language.lower() not in languages():
        raise SynthesisError(f'unknown eSpeak NG language {language!r} in voice {voice!r}; '
                             f'the languages are the files under {os.path.join(data_path(), "lang")}')
    if variant and variant not in variants():
        raise SynthesisError(f'unknown eSpeak NG variant {variant!r} in voice {voice!r}; '
                             f'known: {", ".join(variants())}')


def _c_library():
    try:
        return ctypes.CDLL(None)   # this process's C library (POSIX)
    except (OSError, TypeError):
        return ctypes.cdll.msvcrt  # Windows


_libc = _c_library()
_libc.srand.argtypes = [ctypes.c_uint]
_received = []                 # the buffers of the synthesis in progress
_lock = threading.Lock()       # one synthesis at a time: the library and _received are shared


def _receive(wav, sample_count, events) -> int:
    if wav and sample_count > 0:
        _received.append(np.ctypeslib.as_array(wav, shape=(sample_count,)).copy())
    return 0   # continue


_callback = _SynthCallback(_receive)   # module-level: the library holds its address while loaded


def synthesize(text: str, voice: str = 'en', rate: int = 175, pitch: int = 50, pitch_range: int = 50,
               volume: int = 100, word_gap: int = 0, seed: int = 0) -> tuple:
    """Speak text -> (samples float32 [n] in [-1, 1), sample_rate in Hz; 22050 for eSpeak NG's voices).

    voice: '<language>[+<variant>]', e.g. 'en', 'en-us+f2', 'en-gb-scotland+klatt'.
    rate: words per minute, 80 to 450 (clipped). pitch, pitch_range: 0 to 100, 50 is the voice's own.
    volume: 0 to 200, 100 normal. word_gap: extra pause between words, units of 10 ms.
    seed: of eSpeak NG's noise generator (breath, frication). Same arguments, same samples.
    Raises SynthesisError for an unknown voice or a library failure.
    """
    check_voice(voice)
    settings = ((RATE, int(np.clip(rate, RATE_MINIMUM, RATE_MAXIMUM))), (PITCH, pitch), (RANGE, pitch_range),
                (VOLUME, volume), (WORDGAP, word_gap))
    encoded = text.encode('utf-8')
    with _lock:
        library = _load()
        try:
            sample_rate = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, data_path().encode(), 0)
            if sample_rate <= 0:
                raise SynthesisError(f'espeak_Initialize failed (data folder {data_path()})')
            library.espeak_SetSynthCallback(_callback)
            library.espeak_ng_SetRandSeed(seed)
            _libc.srand(seed & 0xFFFFFFFF)   # the Klatt 6 (speechPlayer) noise
            status = library.espeak_SetVoiceByName(voice.encode())
            if status != EE_OK:
                raise SynthesisError(f'eSpeak NG could not load voice {voice!r} (error {status})')
            for parameter, value in settings:
                status = library.espeak_SetParameter(parameter, int(value), 0)
                if status != EE_OK:
                    raise SynthesisError(f'espeak_SetParameter({parameter}, {value}) failed (error {status})')
            _received.clear()
            status = library.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8,
                                          None, None)
            if status != EE_OK:
                raise SynthesisError(f'espeak_Synth failed for voice {voice!r} (error {status})')
            samples = np.concatenate(_received) if _received else np.zeros(0, dtype=np.int16)
        finally:
            _received.clear()
            library.espeak_Terminate()
            _unload(library)
    return samples.astype(np.float32) / 32768.0, sample_rate
