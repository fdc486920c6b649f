"""An .npy file written row by row, for embedding runs too big to hold in memory."""
import os

import numpy as np


class NpyRowWriter:
    """Rows appended to an .npy file as they come; the header's row count is fixed at close().

    The file is written as PATH.partial and renamed at close(), so an interrupted run leaves no
    file that looks complete. Memory: one row at a time. Rows are float32 [columns].
    """
    HEADER_BYTES = 128

    def __init__(self, path: str, columns: int):
        self.path, self.columns, self.rows = path, columns, 0
        self.stream = open(f'{path}.partial', 'wb')
        self.stream.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {self.columns}), }}"
        length = self.HEADER_BYTES - 10
        return b'\x93NUMPY\x01\x00' + length.to_bytes(2, 'little') + text.ljust(length - 1).encode('latin1') + b'\n'

    def append(self, row: np.ndarray) -> None:
        self.stream.write(np.asarray(row, dtype='<f4').tobytes())
        self.rows += 1

    def close(self) -> None:
        self.stream.seek(0)
        self.stream.write(self._header(self.rows))
        self.stream.close()
        os.replace(f'{self.path}.partial', self.path)
