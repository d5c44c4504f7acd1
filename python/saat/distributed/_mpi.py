"""Data-parallel training over MPI (the ``comm=`` keyword of :func:`saat.train` and of the
defences' ``fit``): the collectives the Swift training loop calls, carried out by mpi4py.

The Swift loop splits every global batch over the ranks and calls back here twice per step: to
gather every rank's rows of the batch's outputs (``Allgatherv``) and to sum the parameter
gradients (one ``Allreduce`` on a flat float32 buffer). mpi4py releases the GIL while it
communicates; the Swift loop itself runs without it.
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["Collectives"]


def _require_mpi4py():
    try:
        from mpi4py import MPI
    except ImportError as e:  # the optional extra saat[mpi]
        raise ImportError("argument 'comm': data-parallel training needs mpi4py "
                          "(pip install 'saat[mpi]', which also installs the mpich wheel's mpiexec)") from e
    return MPI


class Collectives:
    """The collectives of one data-parallel training call on ``comm`` (an mpi4py communicator).

    ``allreduce(buf)`` sums a float32 buffer in place over the ranks; ``allgather(local, counts,
    out)`` concatenates every rank's ``counts[r]`` floats into ``out`` in rank order. Both receive
    memoryviews of Swift memory that are valid only during the call.
    """

    def __init__(self, comm):
        MPI = _require_mpi4py()
        if not isinstance(comm, MPI.Comm) or isinstance(comm, MPI.Intercomm):
            raise TypeError(f"argument 'comm': expected an mpi4py intra-communicator such as MPI.COMM_WORLD, "
                            f"got {type(comm).__name__}")
        if comm == MPI.COMM_NULL:
            raise ValueError("argument 'comm': expected a valid communicator, got MPI.COMM_NULL")
        self.comm = comm
        self._MPI = MPI
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def allreduce(self, buf) -> None:
        a = np.frombuffer(buf, dtype=np.float32)
        self.comm.Allreduce(self._MPI.IN_PLACE, a, op=self._MPI.SUM)

    def allgather(self, local, counts, out) -> None:
        send = np.frombuffer(local, dtype=np.float32)
        recv = np.frombuffer(out, dtype=np.float32)
        self.comm.Allgatherv(send, [recv, list(counts)])

    def core_kwargs(self) -> dict:
        """The keyword arguments of ``saat._core.train`` that make it data-parallel."""
        if self.size == 1:
            return {}
        return {"rank": self.rank, "size": self.size, "allreduce": self.allreduce, "allgather": self.allgather}

    def require_same(self, **arrays) -> None:
        """Raise ValueError naming the argument when the ranks were not given the same arrays
        (every rank must hold the whole training set and take its slice of each global batch)."""
        mine = {k: (tuple(v.shape), zlib.adler32(np.ascontiguousarray(v).view(np.uint8).reshape(-1)))
                for k, v in arrays.items()}
        everyone = self.comm.allgather(mine)
        for name in arrays:
            seen = {r: d[name] for r, d in enumerate(everyone)}
            if len(set(seen.values())) > 1:
                shapes = ", ".join(f"rank {r}: shape {s}" for r, (s, _) in seen.items())
                raise ValueError(f"argument '{name}': every rank must be given the same array for data-parallel "
                                 f"training (they differ: {shapes}; same shapes mean different values)")

    def require_same_params(self, params: dict) -> None:
        everyone = self.comm.allgather(sorted((k, repr(v)) for k, v in params.items()))
        if any(p != everyone[0] for p in everyone):
            raise ValueError("argument 'params': every rank must train with the same hyper-parameters "
                             f"(rank 0: {dict(everyone[0])}, rank {self.rank}: {dict(everyone[self.rank])})")
