"""One request inside the engine: its lengths, progress, KV blocks and prefix-cache identity."""

from __future__ import annotations

import math
from collections.abc import Sequence as Tokens
from dataclasses import dataclass, field

from loadgen.sim.tokens import Token, block_hashes, output_tokens


@dataclass(slots=True, eq=False)
class Sequence:
    """One request inside the engine. `computed` tokens have their KV in cache (tokens).

    `prompt` is the prompt's token content (`prompt_tokens` of them; see tokens.py), which
    prefix caching needs; `role` marks the first output token as a chat template marks a turn.
    Once queued, the engine keeps only the hashes of the full blocks known so far (`hashes`) and
    the prompt's last partial block (`tail`; None when the sequence is not cached). `cached`
    holds the hashes of the cached blocks it holds, `committed` counts its leading full blocks
    already offered to the cache, and `commit_at` is the computed count that fills the next.
    `cache_queries` and `cache_hits` are the prompt tokens looked up in the prefix cache and
    found there when it was first scheduled (vLLM's per-request counts; a recomputation after
    preemption is not counted).
    """

    rid: int
    prompt_tokens: int
    output_tokens: int
    prompt: Tokens[Token] | None = None
    role: str | None = None
    generated: int = 0
    computed: int = 0
    blocks: int = 0
    prefill_target: int = 0
    preemptions: int = 0
    done: bool = False
    cache_queries: int = 0
    cache_hits: int = 0
    hashes: list[int] = field(default_factory=list)
    tail: tuple[Token, ...] | None = None
    cached: list[int] = field(default_factory=list)
    committed: int = 0
    commit_at: float = math.inf

    @property
    def prefilling(self) -> bool:
        """True until the prompt (and any recomputed output) is in the KV cache."""
        return self.computed < self.prefill_target

    def hash_prompt(self, block_size: int) -> None:
        """Keep the hashes of the prompt's full blocks and its last partial block; drop the rest."""
        prompt, self.prompt = self.prompt, None
        if prompt is None:
            return
        if len(prompt) != self.prompt_tokens:
            raise ValueError(f"a prompt of {self.prompt_tokens} tokens given {len(prompt)} tokens")
        self.hashes = block_hashes(prompt, block_size)
        self.tail = tuple(prompt[len(self.hashes) * block_size :])
        self.commit_at = block_size

    def block_hash(self, index: int, block_size: int) -> int:
        """The chained hash of full block `index`, computing it if it holds output tokens."""
        if index < len(self.hashes):
            return self.hashes[index]
        start = index * block_size
        first = max(start - self.prompt_tokens, 0)
        outputs = output_tokens(self.rid, first, start + block_size - self.prompt_tokens)
        if first == 0 and self.role is not None:
            outputs[0] = (self.role, outputs[0])
        head = self.tail if self.tail is not None and start < self.prompt_tokens else ()
        block_hash = hash((self.hashes[index - 1] if index else None, (*head, *outputs)))
        self.hashes.append(block_hash)
        return block_hash
