"""What a peer process actually loaded, for the benchmark's check that each peer runs on the BLAS
it is meant to: the BLAS, LAPACK and OpenMP libraries mapped into this process (/proc/self/maps,
symbolic links resolved)."""
import os
import re

LIBRARY = re.compile(r"blas|lapack|gomp|libomp|libiomp|mkl")


def loaded_libraries():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and LIBRARY.search(os.path.basename(parts[5])):
                    libs.add(os.path.realpath(parts[5]))
    except OSError:
        pass
    return sorted(libs)
