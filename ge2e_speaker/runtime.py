"""What a training process needs from its surroundings: torchrun's environment and process group,
CPU arithmetic, native bfloat16 detection, stop requests (Ctrl-C, SIGTERM), the death of its
DataLoader workers, and workers that die with their parent."""
import ctypes
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass

import torch
from torch.utils.data._utils import signal_handling

PR_SET_PDEATHSIG = 1        # linux/prctl.h


@dataclass(frozen=True)
class TorchrunProcess:
    """This process's place in a torchrun job; rank 0 of 1 for a plain run."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_process() -> TorchrunProcess:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them."""
    return TorchrunProcess(int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)),
                           int(os.environ.get('LOCAL_RANK', 0)))


def join_process_group(device: torch.device) -> None:
    """Under torchrun: NCCL between GPUs, gloo between CPU processes."""
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')


def leave_process_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def configure_cpu_arithmetic() -> None:
    """Flush denormal floats to zero, as GPUs do. Gradients that fade through an LSTM's frames
    reach the denormal range, where x86 arithmetic is many times slower: a training step of
    4 x 4 utterances on 550-frame crops of synthetic patterns took 6.3 s instead of 0.85 s on
    one core. Threads inherit the setting when they are created, so call this before the first
    parallel torch operation; called later, it covers the calling thread only."""
    torch.set_flush_denormal(True)


def cpu_has_bfloat16(cpuinfo: str = '/proc/cpuinfo') -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bfloat16
    autocast is fast; elsewhere it is emulated and slower than float32."""
    try:
        with open(cpuinfo, encoding='utf-8') as stream:
            flags = next((line for line in stream if line.startswith('flags')), '').split()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


class StopRequest:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, save
    and exit; a second Ctrl-C interrupts at once. signal_name: the first signal's name, or None."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if hasattr(signal, 'SIGTERM'):
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exception):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, number, frame):
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(number).name


def worker_death(error: BaseException):
    """One line when error is torch's report of a DataLoader worker that died (killed by a signal,
    or by the kernel's out-of-memory killer), or the broken connection a batch was coming over,
    else None."""
    if isinstance(error, (ConnectionError, EOFError)):       # killed while handing a batch over
        return f'a data-loading worker process died while handing over a batch ({type(error).__name__}: {error})'
    match = re.search(r'DataLoader worker \(pid[^)]*\)[^.:]*(: [\w ]+)?', str(error))
    if not isinstance(error, RuntimeError) or match is None:
        return None
    return f'a data-loading worker process died ({match.group(0).strip()})'


def meet_worker_deaths_in_loop() -> None:
    """Switch off torch's SIGCHLD handler, which raises in the main thread, wherever it is, as soon
    as a DataLoader worker dies: mid-step, or while a stopping run saves its checkpoint or closes
    its logs (`pkill` kills every worker at once). Without it, a DataLoader finds a dead worker
    itself when it waits for a batch (within 5 s) and raises there, in the training loop. For the
    rest of the process: an exit that raised somewhere later would be no better."""
    if hasattr(signal, 'SIGCHLD') and threading.current_thread() is threading.main_thread():
        signal_handling._set_SIGCHLD_handler()      # torch installs it once per process: now, to switch it off
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def die_with_parent(*_) -> None:
    """Ask Linux to kill this worker process when its parent dies (prctl PR_SET_PDEATHSIG), so
    that a run killed with SIGKILL or by a timeout leaves no orphaned workers; elsewhere a no-op.
    Takes and ignores a DataLoader's worker id (worker_init_fn)."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
