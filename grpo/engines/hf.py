"""Rollouts with Hugging Face ``generate``: the CPU fallback engine.

Batched, with the KV cache and left padding. Temperature, top-k and top-p are
applied by our own logits processor, which also records each sampled token's
log-probability under exactly the distribution it was drawn from (keeping one
``(B, V)`` slice at a time, never the full ``(T, B, V)`` score history). A
stopping criterion records when each row finished, so ``finish_reason`` and the
completion length are exact whatever the pad token is.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.stopping_criteria import EosTokenCriteria, StopStringCriteria

from grpo.distributed import fsdp_units, gathered_for_generation
from grpo.engines.base import Completions, SamplingParams, WeightSyncError
from grpo.engines.hf_decode import sample, unsupported_reason
from grpo.lora import is_peft_model, plain_named_parameters
from grpo.precision import compute_autocast


class _WarpAndRecord(LogitsProcessor):
    """Temperature, top-k, top-p; remembers log-probs of the tokens that get sampled.

    At a temperature above 0 it also draws each row's token itself, by inverting the row's cumulative
    distribution at a uniform number, and hands ``generate`` (running greedy) a distribution with all
    mass on that token. The uniforms come from torch's RNG, one per row and step, or with ``row_seeds``
    from each row's own seed: a row's samples then depend only on its seed, not on the other rows of
    the batch. (``generate``'s own sampler, ``multinomial``, draws an exponential number for every token
    of the vocabulary: 0.6 ms a step for 64 rows of a 434-token vocabulary, a tenth of a small
    model's decoding.)
    """

    def __init__(self, sampling: SamplingParams, row_seeds: Sequence[int] | None = None):
        self.sampling = sampling
        self.row_seeds = row_seeds
        self._uniforms: torch.Tensor | None = None  # (B, max_new_tokens) each row's random numbers, from its seed
        self._step = 0
        self._batch = 0  # rows of the batch (the decode loop may pass scores of fewer)
        self._last: torch.Tensor | None = None  # (B, V) log-probs of the step just sampled
        self.chosen: list[torch.Tensor] = []  # T x (B,)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._record(input_ids)
        warped, self._last = self._warp(scores)
        if self.sampling.temperature == 0:
            return warped
        tokens = self._draw(self._last)  # (B, 1)
        return torch.full_like(self._last, float("-inf")).scatter_(1, tokens, 0.0)  # all mass on the drawn token

    def pick(self, scores: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) the next tokens for (b, V) scores, recording their log-probs: a step of ``generate`` (this
        processor, then greedy over what it returns) without the one-hot scores (``hf_decode.sample``).
        ``rows``: the batch rows the scores are of, when the decode loop has dropped finished ones; the
        others get token 0 and log-prob 0 (their completions have ended), and the random numbers are
        drawn for the whole batch as before, so each row draws what it would have."""
        warped, logprobs = self._warp(scores)
        tokens = warped.argmax(-1) if self.sampling.temperature == 0 else self._draw(logprobs, rows)[:, 0]
        chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)
        if rows is not None:
            batch = self._batch
            tokens = tokens.new_zeros(batch).index_copy_(0, rows, tokens)
            chosen = chosen.new_zeros(batch).index_copy_(0, rows, chosen)
        self._batch = tokens.shape[0]
        self.chosen.append(chosen)
        return tokens

    def _warp(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V) scores after temperature, top-k and top-p, and the log-probs of the distribution they
        define (the one the next tokens are drawn from)."""
        s = self.sampling
        scores = scores.float()  # (B, V)
        if s.temperature > 0 and s.temperature != 1.0:
            scores = scores / s.temperature
        if s.top_k > 0 and s.top_k < scores.shape[-1]:
            kth = torch.topk(scores, s.top_k, dim=-1).values[:, -1:]  # (B, 1)
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if s.top_p < 1.0:
            sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
            probs = sorted_scores.softmax(-1)
            # drop a token when the mass before it already reaches top_p (the top one always stays)
            drop_sorted = (probs.cumsum(-1) - probs) >= s.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            scores = scores.masked_fill(drop, float("-inf"))
        return scores, torch.log_softmax(scores, dim=-1)

    def _draw(self, logprobs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1) one token per row, drawn by inverting each row's cumulative
        distribution at a uniform number in (0, 1] (so the draw never lands on a leading token of
        probability 0). With row seeds, each row's uniforms for every step come from its seed's
        generator once, at the first step (one ``multinomial`` call per row and step cost a sixth of
        sampling on a small model)."""
        batch = logprobs.shape[0] if rows is None else self._batch
        if self.row_seeds is None:
            uniform = 1.0 - torch.rand((batch, 1), device=logprobs.device)  # (B, 1)
            if rows is not None:
                uniform = uniform[rows]
        else:
            if self._uniforms is None:
                steps = max(1, self.sampling.max_new_tokens)
                self._uniforms = torch.stack([
                    1.0 - torch.rand(steps, generator=torch.Generator().manual_seed(int(seed)))
                    for seed in self.row_seeds]).to(logprobs.device)  # (B, steps)
            uniform = self._uniforms[:, self._step % self._uniforms.shape[1], None]  # (B, 1)
            if rows is not None:
                uniform = uniform[rows]
        self._step += 1
        cdf = logprobs.exp().cumsum(-1)  # (B, V)
        total = cdf[:, -1:]  # (B, 1): 1 up to rounding
        # log-probs are <= 0, so a total is finite unless NaN; NaN > 0 is False
        if not bool((total > 0).all()):  # the inversion would silently pick the last token
            row = int((~(total > 0)).nonzero()[0, 0])
            row = row if rows is None else int(rows[row])
            raise ValueError(f"sampling: the model's next-token scores in row {row} are NaN or infinite at new token "
                             f"{self._step}, so there is no distribution to draw from. The policy's weights are "
                             "probably broken (a NaN loss, too high a learning rate, an overflow in low precision): "
                             "resume from an earlier checkpoint, or lower optim.lr")
        target = uniform * total  # (B, 1)
        return torch.searchsorted(cdf, target).clamp_max(cdf.shape[-1] - 1)  # (B, 1)

    def _record(self, input_ids: torch.Tensor) -> None:
        if self._last is not None:
            self.chosen.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
            self._last = None

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, T) log-probs of the generated tokens; call once generate returned."""
        self._record(sequences)
        return torch.stack(self.chosen, dim=1) if self.chosen else sequences.new_zeros((sequences.shape[0], 0), dtype=torch.float)


class _FinishRecorder(StoppingCriteria):
    """Ends a row at EOS or a stop string, and remembers at which new token it ended."""

    def __init__(self, criteria: list[StoppingCriteria], prompt_len: int, batch: int, device: torch.device):
        self.criteria = criteria
        self.prompt_len = prompt_len
        self.finished_at = torch.full((batch,), -1, dtype=torch.long, device=device)  # index of the last token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for criterion in self.criteria:
            done |= criterion(input_ids, scores, **kwargs)
        newly = done & (self.finished_at < 0)
        self.finished_at.masked_fill_(newly, input_ids.shape[1] - self.prompt_len - 1)
        return done


class HFEngine:
    """``RolloutEngine`` over a ``transformers`` causal LM.

    Colocated with the trainer, the engine usually holds the policy module itself;
    then its weights are always current and ``load_weights`` has nothing to copy. A policy
    sharded over several processes (FSDP2) is gathered once for the whole of ``generate``
    (``grpo.distributed.gathered_for_generation``): ranks decode different numbers of steps, so a
    gather in every forward would leave them waiting on each other. Every rank must call
    ``generate`` then, with or without prompts.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, batch_size: int = 256, decoder: str = "auto"):
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; set one so completions can end")
        if decoder not in ("auto", "generate"):
            raise ValueError(f"HFEngine: decoder {decoder!r} is not one of 'auto' (rlvr's own decode loop where "
                             "the model is Llama or Qwen2, else generate) or 'generate'")
        self.decoder = decoder
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy weights under the base model's names into the module; its own tensors are skipped. A LoRA
        (peft) module samples with its adapters, so it takes only its own tensors (the trainer's sync of
        the module this engine holds)."""
        peft = is_peft_model(self.model)
        params = dict(plain_named_parameters(self.model))  # tied weights under every name
        params.update(dict(self.model.named_buffers()))
        with torch.no_grad():
            for name, tensor in named_tensors:
                if name not in params:
                    raise KeyError(f"load_weights: the engine's model has no parameter {name!r}")
                target = params[name]
                if target.data_ptr() == tensor.data_ptr():
                    continue
                if peft:
                    raise WeightSyncError(
                        f"load_weights: {name!r} is not this engine's own tensor. An HF engine over a LoRA policy "
                        "samples with the trainer's module itself and takes no other weights; build it on the "
                        "module the trainer updates (build_engine(..., model=policy))")
                target.copy_(tensor)

    def close(self) -> None:
        """Nothing to free: the engine holds the trainer's own module."""

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams,
                 seeds: Sequence[int] | None = None) -> Completions:
        if seeds is not None and len(seeds) != len(prompt_ids):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompt_ids)} prompts (one per prompt)")
        requests = [(i, list(p), None if seeds is None else int(seeds[i]) + j)
                    for i, p in enumerate(prompt_ids) for j in range(n)]
        out = Completions()
        was_training = self.model.training
        self.model.eval()
        try:
            with gathered_for_generation(self.model), compute_autocast(self.model):
                for start in range(0, len(requests), self.batch_size):
                    self._generate_chunk(requests[start : start + self.batch_size], sampling, out)
        finally:
            self.model.train(was_training)
        return out

    def _generate_chunk(self, requests: list[tuple[int, list[int], int | None]], sampling: SamplingParams,
                        out: Completions) -> None:
        device = next(self.model.parameters()).device
        width = max(len(p) for _, p, _ in requests)
        input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, (_, prompt, _) in enumerate(requests):  # left padding
            if not prompt:
                raise ValueError("empty prompt: every prompt needs at least one token")
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, width - len(prompt) :] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)

        eos_id = self.tokenizer.eos_token_id
        criteria: list[StoppingCriteria] = [EosTokenCriteria(eos_token_id=eos_id)]
        if sampling.stop:
            criteria.append(StopStringCriteria(self.tokenizer, list(sampling.stop)))
        recorder = _FinishRecorder(criteria, width, len(requests), device)
        row_seeds = [seed for _, _, seed in requests] if requests[0][2] is not None else None
        warper = _WarpAndRecord(sampling, row_seeds)
        if self.own_decoding():
            sequences = sample(self.model, input_ids, attention_mask, sampling.max_new_tokens, warper.pick,
                               recorder, self.pad_id)
        else:
            sequences = self._hf_generate(input_ids, attention_mask, sampling, warper, recorder)
        new_tokens = sequences[:, width:].cpu()  # (B, T)
        logprobs = warper.finish(sequences).cpu()  # (B, T)
        finished_at = recorder.finished_at.cpu()
        for row, (prompt_index, _, _) in enumerate(requests):
            end = int(finished_at[row])
            length = end + 1 if end >= 0 else new_tokens.shape[1]
            ids = new_tokens[row, :length].tolist()
            out.prompt_index.append(prompt_index)
            out.token_ids.append(ids)
            out.logprobs.append(logprobs[row, :length].tolist())
            out.text.append(self.tokenizer.decode(ids, skip_special_tokens=True))
            out.finish_reason.append("stop" if end >= 0 else "length")

    def own_decoding(self) -> bool:
        """Whether ``generate`` decodes with ``hf_decode.sample`` (a Llama or Qwen2 model, unsharded, no
        adapters, and ``decoder='auto'``) rather than Hugging Face ``generate``."""
        return self.decoder == "auto" and unsupported_reason(self.model) is None and not fsdp_units(self.model)

    def _hf_generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sampling: SamplingParams,
                     warper: _WarpAndRecord, recorder: _FinishRecorder) -> torch.Tensor:
        """The (B, W + T) sequences from Hugging Face ``generate``, drawing with ``warper``."""
        eos_id = self.tokenizer.eos_token_id
        config = GenerationConfig(
            do_sample=False,  # the warper draws (or, at temperature 0, leaves the scores to greedy)
            max_new_tokens=sampling.max_new_tokens,
            # neutral values, so no default of the model's generation_config warps the scores again
            temperature=1.0, top_k=0, top_p=1.0, min_p=None, typical_p=1.0, repetition_penalty=1.0,
            no_repeat_ngram_size=0, epsilon_cutoff=0.0, eta_cutoff=0.0, num_beams=1,
            eos_token_id=eos_id, pad_token_id=self.pad_id, use_cache=True,
        )
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([warper]),
            stopping_criteria=StoppingCriteriaList([recorder]),
            synced_gpus=False,  # HF turns it on for FSDP modules; the policy is unsharded here, and ranks decode alone
        )
