"""Wire format between the trusted parent and the zygote (mirrored in _zygote.py, checked by a test)."""

import struct

OP_JOB, OP_KILL, OP_EXIT, OP_READY, OP_FATAL, OP_DONE = 1, 2, 3, 10, 11, 12
JOB_FMT = "<qdqqqqqqq?"   # id, timeout_s, memory_mb, cpu_s, max_file_bytes, disk_mb, max_open_files,
#                           max_processes, payload size, has_files
DONE_FMT = "<qiidqB"      # id, wait status (-1: none), killed, cpu seconds, max rss KiB, flags
KILLED_NONE, KILLED_TIMEOUT, KILLED_MEMORY, KILLED_REQUEST = 0, 1, 2, 3
FLAG_MEMERR, FLAG_SETUP_ERROR = 1, 2
JOB_SIZE = 1 + struct.calcsize(JOB_FMT)
DONE_SIZE = struct.calcsize(DONE_FMT)


def files_payload(program: bytes, files) -> bytes:
    """u32 count, then per file: u32 name length, name, u64 size, content. main.py comes first."""
    parts = [struct.pack("<I", 1 + len(files))]
    for name, data in [("main.py", program), *files]:
        n = name.encode("utf-8", "surrogateescape")
        parts += [struct.pack("<I", len(n)), n, struct.pack("<Q", len(data)), data]
    return b"".join(parts)
