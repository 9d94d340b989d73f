"""vLLM in a separate process: ``rlvr vllm-serve`` and the trainer's client for it.

For setups where generation gets GPUs of its own, ``rlvr vllm-serve`` runs a
``VLLMEngine`` (vLLM in its process, all of its GPU memory, no sleeping) behind a
small HTTP API, and the trainer uses ``VLLMServerEngine``, which implements the
same ``RolloutEngine`` contract over it (``rollout.vllm_mode: server``).

The channel (JSON unless said otherwise; one request at a time, in order):

* ``GET /health`` -> ``{"status": "ok", "model": PATH, "weights_version": N}``
* ``POST /generate`` ``{"prompt_ids": [[int]], "n": G, "seed": S, "seeds": [int] | null,
  "sampling": {"temperature", "top_p", "top_k", "max_new_tokens", "stop"}}`` ->
  ``{"prompt_index", "token_ids", "text", "logprobs", "finish_reason"}``, the
  fields of ``Completions``. The same seed gives the same samples; ``seeds`` (one per
  prompt) seeds each prompt's samples on their own (see ``RolloutEngine.generate``).
  Several trainer ranks may share one server: requests are served one at a time.
* ``POST /load_weights``, body: the weights as a safetensors file (HF parameter
  names, tied weights under every name) -> ``{"loaded": K, "weights_version": N}``.
  The server reloads them in place (``VLLMEngine.load_weights``) and resets its
  prefix cache; ``weights_version`` counts the loads.

Every client request has a deadline (``sync_timeout_s`` for a weight load,
``generate_timeout_s`` for sampling): a server that stops answering gives a
``WeightSyncError`` / ``TimeoutError`` naming the URL, never a hang. The server
itself enforces ``sync_timeout_s`` on a load with ``hard_deadline``.

The weights travel through the trainer's host memory and HTTP, which suits
models up to a few billion parameters; vLLM's own NCCL weight-transfer API
(``vllm serve --weight-transfer-config``) is the faster route for larger ones
and is not wired here.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Iterable, Sequence

import torch

from grpo.engines.base import Completions, SamplingParams, WeightSyncError
from grpo.lora import check_plain_names


def weights_to_bytes(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> bytes:
    """A safetensors file of the tensors, on CPU; tensors that share storage (tied weights) are copied apart."""
    from safetensors.torch import save

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in named_tensors:
        t = tensor.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        out[name] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return save(out)


class VLLMServerEngine:
    """``RolloutEngine`` over a running ``rlvr vllm-serve``."""

    def __init__(self, url: str, tokenizer=None, *, sync_timeout_s: float = 300.0, generate_timeout_s: float = 3600.0,
                 connect_timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.tokenizer = tokenizer
        self.sync_timeout_s = sync_timeout_s
        self.generate_timeout_s = generate_timeout_s
        health = self._request("GET", "/health", None, connect_timeout_s, "reach")
        self.model_path = health.get("model")  # what the server loaded at start

    def _request(self, method: str, path: str, body: bytes | None, timeout_s: float, what: str,
                 content_type: str = "application/json") -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"vLLM server {self.url}: {what} failed with HTTP {exc.code}: {detail}") from exc
        except (TimeoutError, socket.timeout) as exc:
            raise TimeoutError(f"vLLM server {self.url}: no answer within {timeout_s:g} s to {what}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TimeoutError(f"vLLM server {self.url}: no answer within {timeout_s:g} s to {what}") from exc
            raise ConnectionError(f"vLLM server {self.url}: cannot {what} it ({exc.reason}); "
                                  "is `rlvr vllm-serve` running there?") from exc

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams,
                 seeds: Sequence[int] | None = None) -> Completions:
        if not prompt_ids:
            return Completions()
        seed = int(torch.randint(0, 2**31 - 1, (1,)))  # from the trainer's RNG: seeded and resumed runs repeat
        body = {"prompt_ids": [list(p) for p in prompt_ids], "n": n, "seed": seed,
                "seeds": None if seeds is None else [int(s) for s in seeds],
                "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
                             "max_new_tokens": sampling.max_new_tokens, "stop": list(sampling.stop)}}
        out = self._request("POST", "/generate", json.dumps(body).encode(), self.generate_timeout_s, "generate")
        return Completions(prompt_index=out["prompt_index"], token_ids=out["token_ids"], text=out["text"],
                           logprobs=out["logprobs"], finish_reason=out["finish_reason"])

    def close(self) -> None:
        """Nothing to free here: the server owns its engine and keeps running for the next client."""

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        named_tensors = list(named_tensors)
        check_plain_names(name for name, _ in named_tensors)
        payload = weights_to_bytes(named_tensors)
        try:
            self._request("POST", "/load_weights", payload, self.sync_timeout_s, "load weights",
                          content_type="application/octet-stream")
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            raise WeightSyncError(f"weight sync to the vLLM server failed: {exc}") from exc


# ---------------------------------------------------------------- the server


def _handler(engine, model_path: str, sync_timeout_s: float):
    from grpo.engines.vllm import hard_deadline

    state = {"weights_version": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._reply(200, {"status": "ok", "model": model_path, **state})
            else:
                self._reply(404, {"error": f"no such endpoint {self.path}; GET /health"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                if self.path == "/generate":
                    req = json.loads(self._body())
                    torch.manual_seed(int(req["seed"]))
                    s = req["sampling"]
                    sampling = SamplingParams(temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"],
                                              max_new_tokens=s["max_new_tokens"], stop=tuple(s["stop"]))
                    out = engine.generate(req["prompt_ids"], int(req["n"]), sampling, seeds=req.get("seeds"))
                    self._reply(200, {"prompt_index": out.prompt_index, "token_ids": out.token_ids, "text": out.text,
                                      "logprobs": out.logprobs, "finish_reason": out.finish_reason})
                elif self.path == "/load_weights":
                    from safetensors.torch import load

                    with hard_deadline(sync_timeout_s, "loading weights into the vLLM server"):
                        tensors = load(self._body())
                        engine.load_weights(tensors.items())
                    state["weights_version"] += 1
                    self._reply(200, {"loaded": len(tensors), **state})
                else:
                    self._reply(404, {"error": f"no such endpoint {self.path}; POST /generate or /load_weights"})
            except Exception as exc:  # the client gets the error; the server keeps serving
                self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

        def log_message(self, format: str, *args) -> None:  # one line per request, to stderr
            sys.stderr.write(f"[vllm-serve {time.strftime('%H:%M:%S')}] {format % args}\n")

    return Handler


def serve(model_path: str, *, host: str = "127.0.0.1", port: int = 8000, dtype: str = "auto", seed: int = 0,
          gpu_memory_utilization: float = 0.9, cpu_kv_cache_gb: float = 1.0, sync_timeout_s: float = 300.0,
          trust_remote_code: bool = False) -> None:
    """Load ``model_path`` into vLLM and serve the channel above until interrupted."""
    from transformers import AutoTokenizer

    from grpo.models import resolve_model_path
    from grpo.engines.vllm import VLLMEngine

    path = resolve_model_path(model_path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    engine = VLLMEngine(path, tokenizer, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                        sleep_level=0, cpu_kv_cache_gb=cpu_kv_cache_gb, sync_timeout_s=sync_timeout_s,
                        trust_remote_code=trust_remote_code)
    server = HTTPServer((host, port), _handler(engine, path, sync_timeout_s))
    print(f"rlvr vllm-serve: serving {path} at http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()
