"""The encoder as TorchScript or ONNX, each checked against the eager model.

Input mels float32 [batch, Mel_Dim, frames] (any batch size and frame count), output the raw
embeddings [batch, Embedding_Size]: to embed a recording, cut its mel into windows, average the
windows' outputs and L2-normalise (what embedding.SpeakerEncoder does).
"""
import os
import warnings

import numpy as np
import torch

from .atomic_files import folder_problem
from .modules import Encoder

TOLERANCE = 1e-4             # largest |difference| from the eager model an export may show


class ExportError(RuntimeError):
    """An export failed or differs from the eager model; str is one line."""


def export_encoder(model: Encoder, mel_dim: int, frames: int, torchscript: str = None, onnx: str = None) -> list:
    """Write the encoder as TorchScript and/or ONNX, traced on [2, mel_dim, frames]; each export is
    run on another batch size and length and compared with the eager model. Returns one line per export.
    Raises ExportError, before any work, for a path that cannot be written."""
    for flag, path in (('--export-torchscript', torchscript), ('--export-onnx', onnx)):
        problem = path and (f'{path}: is a folder' if os.path.isdir(path) else folder_problem(os.path.dirname(path) or '.'))
        if problem:
            raise ExportError(f'{flag} {problem}; give a file path in a writable folder')
    model = model.cpu().eval()
    example = torch.randn(2, mel_dim, frames)
    check = torch.randn(5, mel_dim, frames + 7)          # another batch and length than traced
    with torch.inference_mode():
        expected = model(check).float().numpy()
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # torch marks torch.jit and the legacy ONNX exporter deprecated
        if torchscript:
            with torch.no_grad():
                traced = torch.jit.trace(model, example)
            traced.save(torchscript)
            with torch.inference_mode():
                got = torch.jit.load(torchscript)(check).numpy()
            lines.append(_parity_line('TorchScript', torchscript, got, expected))
        if onnx:
            try:
                torch.onnx.export(model, (example,), onnx, input_names=['mels'], output_names=['embeddings'],
                                  dynamic_axes={'mels': {0: 'batch', 2: 'frames'}, 'embeddings': {0: 'batch'}},
                                  opset_version=17, dynamo=False)
            except Exception as error:
                raise ExportError(f'ONNX export failed ({type(error).__name__}: {str(error).splitlines()[0]}); '
                                  f'it needs the onnx package: pip install onnx onnxruntime') from None
            try:
                import onnxruntime
            except ImportError:
                lines.append(f'ONNX: {onnx} (not checked against eager: onnxruntime is not installed)')
            else:
                session = onnxruntime.InferenceSession(onnx, providers=['CPUExecutionProvider'])
                got = session.run(None, {'mels': check.numpy()})[0]
                lines.append(_parity_line('ONNX', onnx, got, expected))
    return lines


def _parity_line(kind: str, path: str, got: np.ndarray, expected: np.ndarray) -> str:
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise ExportError(f'{kind} export {path} differs from the eager model by {difference:.2e}')
    return f'{kind}: {path} (max |difference| from the eager model {difference:.1e} on {list(expected.shape)} outputs)'
