"""Wire format between the trusted parent and the zygote: every message is built and read here.

The zygote cannot import this package (it runs inside the sandbox, standard library only), so
its code is this file's source followed by _zygote.py's (see isolation.zygote_source): both
sides use these very records and functions, and the format cannot drift between them.

Messages on the control socket (SOCK_SEQPACKET, one message each; little-endian structs):
  parent -> zygote: JOB  = op 1, JobHeader fields, + SCM_RIGHTS [payload, stdin, stdout, stderr]
                    KILL = op 2, job id              EXIT = op 3
  zygote -> parent: READY = op 10, "key=value" lines  FATAL = op 11, text
                    DONE  = op 12, Done fields, then the setup error's text
"""

import struct
from typing import NamedTuple

OP_JOB, OP_KILL, OP_EXIT, OP_READY, OP_FATAL, OP_DONE = 1, 2, 3, 10, 11, 12
KILLED_NONE, KILLED_TIMEOUT, KILLED_MEMORY, KILLED_REQUEST = 0, 1, 2, 3
FLAG_MEMERR, FLAG_SETUP_ERROR = 1, 2
TEXT_MAX = 8000  # bytes of text (FATAL, a setup error) a message carries at most

JOB_FMT = "<qdqqqqqqq?"
DONE_FMT = "<qiidqB"
KILL_FMT = "<q"
JOB_SIZE = 1 + struct.calcsize(JOB_FMT)
DONE_SIZE = 1 + struct.calcsize(DONE_FMT)


class JobHeader(NamedTuple):
    """What the zygote needs to know about a job; its data comes as descriptors beside it."""

    job_id: int
    timeout_s: float
    memory_mb: int
    cpu_s: int              # RLIMIT_CPU, whole seconds
    max_file_bytes: int
    disk_mb: int
    max_open_files: int
    max_processes: int      # RLIMIT_NPROC: the program's own processes and threads, plus its pid 1
    payload_size: int       # bytes of the payload memfd: main.py alone, or files_payload(...)
    has_files: bool         # the payload is files_payload(...), not main.py alone

    def encode(self) -> bytes:
        return bytes([OP_JOB]) + struct.pack(JOB_FMT, *self)

    @classmethod
    def decode(cls, raw: bytes) -> "JobHeader | None":
        """The header of a JOB message; None if ``raw`` is not one."""
        if len(raw) != JOB_SIZE or raw[0] != OP_JOB:
            return None
        return cls(*struct.unpack_from(JOB_FMT, raw, 1))


class Done(NamedTuple):
    """How a job ended, as the zygote saw it."""

    job_id: int
    wait_status: int | None   # of the program's pid 1 (os.wait4); None when it never ran
    killed: int               # KILLED_*: whether, and why, the zygote killed the run
    cpu_s: float              # user + system CPU seconds of the reaped processes
    max_rss_kb: int           # peak resident memory of the largest process, KiB
    memory_error: bool        # the program died of an uncaught MemoryError
    setup_error: str | None   # the run could not be set up (a sandbox failure), and why

    def encode(self) -> bytes:
        flags = (FLAG_MEMERR if self.memory_error else 0) | (FLAG_SETUP_ERROR if self.setup_error is not None else 0)
        status = -1 if self.wait_status is None else self.wait_status
        text = (self.setup_error or "").encode("utf-8", "replace")[-TEXT_MAX:]
        return bytes([OP_DONE]) + struct.pack(DONE_FMT, self.job_id, status, self.killed, self.cpu_s,
                                              self.max_rss_kb, flags) + text

    @classmethod
    def decode(cls, raw: bytes) -> "Done | None":
        """The record in a DONE message; None if ``raw`` is not one."""
        if len(raw) < DONE_SIZE or raw[0] != OP_DONE:
            return None
        job_id, status, killed, cpu_s, max_rss_kb, flags = struct.unpack_from(DONE_FMT, raw, 1)
        setup_error = None
        if flags & FLAG_SETUP_ERROR:
            setup_error = raw[DONE_SIZE:].decode("utf-8", "replace") or "unknown"
        return cls(job_id, None if status < 0 else status, killed, cpu_s, max_rss_kb,
                   bool(flags & FLAG_MEMERR), setup_error)


def encode_kill(job_id: int) -> bytes:
    return bytes([OP_KILL]) + struct.pack(KILL_FMT, job_id)


def decode_kill(raw: bytes) -> int | None:
    """The job id of a KILL message; None if ``raw`` is not one."""
    if len(raw) < 1 + struct.calcsize(KILL_FMT) or raw[0] != OP_KILL:
        return None
    return struct.unpack_from(KILL_FMT, raw, 1)[0]


def encode_text(op: int, text: str) -> bytes:
    """A FATAL message (or any op followed by text), cut to its last TEXT_MAX bytes."""
    return bytes([op]) + text.encode("utf-8", "replace")[-TEXT_MAX:]


def decode_text(raw: bytes) -> str:
    return raw[1:].decode("utf-8", "replace")


def encode_ready(info: dict) -> bytes:
    """READY: the worker's facts, one "key=value" line each (values without newlines)."""
    return encode_text(OP_READY, "".join(f"{k}={v}\n" for k, v in info.items()))


def decode_ready(raw: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in decode_text(raw).splitlines() if "=" in line)


def files_payload(program: bytes, files) -> bytes:
    """u32 count, then per file: u32 name length, name, u64 size, content. main.py comes first."""
    parts = [struct.pack("<I", 1 + len(files))]
    for name, data in [("main.py", program), *files]:
        n = name.encode("utf-8", "surrogateescape")
        parts += [struct.pack("<I", len(n)), n, struct.pack("<Q", len(data)), data]
    return b"".join(parts)


def read_files_payload(payload: bytes) -> list[tuple[str, bytes]]:
    """The (name, content) pairs of files_payload(...), main.py first."""
    count, = struct.unpack_from("<I", payload, 0)
    pos, out = 4, []
    for _ in range(count):
        n, = struct.unpack_from("<I", payload, pos)
        name = payload[pos + 4:pos + 4 + n].decode("utf-8", "surrogateescape")
        size, = struct.unpack_from("<Q", payload, pos + 4 + n)
        out.append((name, payload[pos + 12 + n:pos + 12 + n + size]))
        pos += 12 + n + size
    return out
