"""A weight sync that cannot finish ends in a clear error within its deadline, never a hang (no vLLM needed)."""

import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

from grpo.trainer import check_logprob_agreement
from grpo.engines.base import WeightSyncError


@pytest.fixture
def silent_server():
    """Accepts connections and never answers, like a server stuck in a sync."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_server_sync_times_out_with_a_clear_error(silent_server):
    from grpo.engines.vllm_server import VLLMServerEngine

    with pytest.raises(TimeoutError, match="no answer within 1 s"):
        VLLMServerEngine(silent_server, connect_timeout_s=1)
    client = VLLMServerEngine.__new__(VLLMServerEngine)  # skip the health check, to reach load_weights
    client.url, client.sync_timeout_s, client.generate_timeout_s = silent_server, 1.0, 1.0
    t0 = time.monotonic()
    with pytest.raises(WeightSyncError, match="weight sync to the vLLM server failed: .*no answer within 1 s"):
        client.load_weights([("w", torch.ones(3))])
    assert time.monotonic() - t0 < 10


def test_server_that_is_not_there_is_named():
    from grpo.engines.vllm_server import VLLMServerEngine

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ConnectionError, match="is `rlvr vllm-serve` running there"):
        VLLMServerEngine(f"http://127.0.0.1:{port}", connect_timeout_s=2)


def test_hard_deadline_ends_a_hung_in_process_sync():
    code = ("import time\nfrom grpo.engines.vllm import hard_deadline\n"
            "with hard_deadline(1, 'the vLLM weight sync'):\n    time.sleep(60)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and time.monotonic() - t0 < 30
    assert "the vLLM weight sync did not finish within 1 s; stopping instead of hanging" in proc.stderr
    done = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "time.sleep(0.1)") + "print('ok')\n"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok"


def test_logprob_agreement_check():
    check_logprob_agreement(0.01, 0.1)
    with pytest.raises(WeightSyncError, match=r"differ from the trainer's by 0\.5000 nats .*max_logprob_diff = 0\.1"):
        check_logprob_agreement(0.5, 0.1)
