"""Shared prefixes: generated prompts that start with one of K system prompts of N tokens.

Agent traffic repeats long system prompts; a server with a prefix cache computes each only once.
A step's K prefixes are drawn from its shared generator (`shared_rng`: a function of the
step's one-process generator only), so every shard of a cluster run sends the same K, and no
step reuses another step's; which prefix a request gets, and the text behind it, come from the
shard's own generator, fresh per request as without prefixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestSpec
from loadgen.workloads import Workload
from loadgen.workloads.text import VOCABULARY, IntArray, TextBatch
from loadgen.workloads.tokenizers import ExactCounter, exact_length_prompts

# Words a prefix starts with: no two prefixes of a step share theirs, capitalised or not.
HEAD_WORDS: tuple[str, ...] = tuple(word.capitalize() for word in VOCABULARY) + VOCABULARY
MAX_PREFIXES = len(HEAD_WORDS)
# Rounds of new first words for prefixes whose first tokens clash under the tokenizer.
HEAD_ROUNDS = 8
# Rounds of re-cutting a fresh part whose joint with its prefix counts other than the sum.
JOIN_ROUNDS = 3
# Between a prefix and the text behind it in a completions prompt.
SEPARATOR = " "


def shared_rng(step_rng: np.random.Generator) -> np.random.Generator:
    """The step's shared generator: `step_rng` jumped ahead 2^127 draws (`step_rng` untouched).

    TypeError for a bit generator that cannot jump (`default_rng`'s PCG64 can).
    """
    bits = step_rng.bit_generator
    if not isinstance(bits, np.random.PCG64 | np.random.PCG64DXSM | np.random.MT19937):
        raise TypeError(f"shared prefixes need a generator that can jump, not {type(bits)}")
    return np.random.Generator(bits.jumped())


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    """`count` prefixes of `tokens` tokens each; prefix k (rank k + 1) drawn with probability
    proportional to 1 / (k + 1)^`zipf`, or uniformly when `zipf` is None."""

    tokens: int
    count: int = 1
    zipf: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise ValueError(f"prefix tokens must be >= 1, got {self.tokens}")
        if not 1 <= self.count <= MAX_PREFIXES:
            raise ValueError(
                f"--num-prefixes must be in 1..{MAX_PREFIXES} (prefixes start with distinct "
                f"words), got {self.count}"
            )
        if self.zipf is not None and not (self.zipf > 0 and np.isfinite(self.zipf)):
            raise ValueError(f"--prefix-zipf must be a finite number > 0, got {self.zipf}")

    def probabilities(self) -> npt.NDArray[np.float64]:
        """The probability of each prefix, by rank (sums to 1)."""
        if self.zipf is None:
            return np.full(self.count, 1.0 / self.count)
        weights = np.arange(1, self.count + 1, dtype=np.float64) ** -self.zipf
        probabilities: npt.NDArray[np.float64] = weights / weights.sum()
        return probabilities

    def assign(self, num_requests: int, rng: np.random.Generator) -> IntArray:
        """The prefix (index, 0 = most popular) of each of `num_requests` requests."""
        if self.zipf is None:
            return rng.integers(0, self.count, size=num_requests)
        return rng.choice(self.count, size=num_requests, p=self.probabilities()).astype(np.int64)

    def note(self) -> str:
        """One sentence for results: what the prefixes are and that they are fresh per step."""
        popularity = "equally likely" if self.zipf is None else f"Zipf s={self.zipf:g}"
        plural = "prefix" if self.count == 1 else "prefixes"
        return (
            f"prompts share {self.count} {plural} of {self.tokens} tokens ({popularity}), "
            "drawn fresh at every step; the text behind each prefix is fresh per request"
        )


def draw_prefixes(
    spec: PrefixSpec,
    texts: TextBatch,
    rng: np.random.Generator,
    tokenizer: ExactCounter | None = None,
) -> tuple[str, ...]:
    """`spec.count` prefixes of `spec.tokens` words (exactly that many tokens with `tokenizer`).

    Each starts with its own word; with a tokenizer, each also with its own token (prefixes
    whose first tokens clash get new first words, for a few rounds; ValueError if they stay).
    """
    bodies = texts(np.full(spec.count, spec.tokens, dtype=np.int64), rng)
    order = rng.permutation(len(HEAD_WORDS)).tolist()
    heads = order[: spec.count]
    unused = order[spec.count :]
    for _ in range(HEAD_ROUNDS):
        sources = [_with_head(body, HEAD_WORDS[h]) for body, h in zip(bodies, heads, strict=True)]
        if tokenizer is None:
            return tuple(sources)
        prefixes = exact_length_prompts(sources, [spec.tokens] * spec.count, tokenizer)
        clashes = _clashing_heads(prefixes, tokenizer)
        if not clashes:
            return tuple(prefixes)
        if len(clashes) > len(unused):
            break
        for i in clashes:
            heads[i] = unused.pop()
    raise ValueError(
        f"cannot make {spec.count} prefixes that start with different tokens under this "
        "tokenizer (use fewer --num-prefixes)"
    )


def _with_head(body: str, head: str) -> str:
    """`body` with its first word replaced by `head`."""
    _, space, rest = body.partition(" ")
    return head + space + rest


def _clashing_heads(prefixes: Sequence[str], tokenizer: ExactCounter) -> list[int]:
    """Indices of prefixes whose first token an earlier prefix starts with too."""
    seen: set[int] = set()
    clashes = []
    for i, ids in enumerate(tokenizer.encode_batch(list(prefixes))):
        first = ids[0] if ids else -1
        if first in seen:
            clashes.append(i)
        seen.add(first)
    return clashes


@dataclass(frozen=True, slots=True)
class SharedPrefixSpec(RequestSpec):
    """A request whose prompt starts with shared prefix `prefix_index` of `prefix_tokens`."""

    prefix_index: int = 0
    prefix_tokens: int = 0


@dataclass(frozen=True, slots=True)
class PrefixedWorkload:
    """Another workload's prompts behind shared prefixes.

    `inner` gives the fresh part of each prompt (its `tokens_in` is the fresh part's length);
    `texts` the style of the prefixes. On a chat endpoint (`chat`) the prefix is a system
    message before the user's; on completions it leads the prompt, and `template` (if any)
    wraps the whole. With `tokenizer` each part is cut to its exact length on its own.
    """

    inner: Workload
    prefixes: PrefixSpec
    texts: TextBatch
    chat: bool = False
    tokenizer: ExactCounter | None = None
    template: str | None = None

    @property
    def name(self) -> str:
        """The inner workload's name."""
        return self.inner.name

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` specs of one step of one process, whose generator is `rng`."""
        return self.step_specs(num_requests, rng, shared_rng(rng))

    def step_specs(
        self, num_requests: int, rng: np.random.Generator, shared: np.random.Generator
    ) -> list[SharedPrefixSpec]:
        """Specs with the prefixes drawn from `shared` and all else from `rng`."""
        prefixes = draw_prefixes(self.prefixes, self.texts, shared, self.tokenizer)
        inner = self.inner.specs(num_requests, rng)
        assigned = self.prefixes.assign(len(inner), rng).tolist()
        fresh_lengths = [spec.tokens_in or 1 for spec in inner]
        leads = [prefixes[k] for k in assigned]
        fresh, tokens_in = self._fresh_parts([s.prompt for s in inner], fresh_lengths, leads)
        return [
            self._spec(spec, lead, part, k, count)
            for spec, lead, part, k, count in zip(
                inner, leads, fresh, assigned, tokens_in, strict=True
            )
        ]

    def _spec(
        self, spec: RequestSpec, lead: str, part: str, index: int, tokens_in: int
    ) -> SharedPrefixSpec:
        """One request: `lead` then `part`, as messages or one prompt."""
        messages = None
        if self.chat:
            prompt = part
            messages = ({"role": "system", "content": lead}, {"role": "user", "content": part})
        else:
            prompt = lead + SEPARATOR + part
            if self.template is not None:
                prompt = self.template.format(prompt=prompt)
        return SharedPrefixSpec(
            prompt=prompt,
            max_tokens=spec.max_tokens,
            tokens_in=tokens_in,
            messages=messages,
            prefix_index=index,
            prefix_tokens=self.prefixes.tokens,
        )

    def _fresh_parts(
        self, sources: list[str], lengths: list[int], leads: list[str]
    ) -> tuple[list[str], list[int]]:
        """The fresh parts and each prompt's input tokens (prefix and fresh part together)."""
        totals = [self.prefixes.tokens + n for n in lengths]
        if self.tokenizer is None:
            return sources, totals
        fresh = exact_length_prompts(sources, lengths, self.tokenizer)
        if self.chat:
            return fresh, totals
        return _exact_joints(sources, fresh, lengths, leads, totals, self.tokenizer)


def _exact_joints(
    sources: list[str],
    fresh: list[str],
    lengths: list[int],
    leads: list[str],
    totals: list[int],
    tokenizer: ExactCounter,
) -> tuple[list[str], list[int]]:
    """Fresh parts re-cut where prefix + part counts other than `totals`, and the counts.

    Tokens may merge or split across the joint; a part is re-cut shorter or longer by the
    difference, for a few rounds. A count still off is reported as counted.
    """
    cuts = list(lengths)
    counts = tokenizer.count_batch(
        [lead + SEPARATOR + part for lead, part in zip(leads, fresh, strict=True)]
    )
    for _ in range(JOIN_ROUNDS):
        off = [i for i, (c, t) in enumerate(zip(counts, totals, strict=True)) if c != t]
        if not off:
            break
        for i in off:
            cuts[i] = max(1, cuts[i] + totals[i] - counts[i])
        recut = exact_length_prompts([sources[i] for i in off], [cuts[i] for i in off], tokenizer)
        recounted = tokenizer.count_batch(
            [leads[i] + SEPARATOR + part for i, part in zip(off, recut, strict=True)]
        )
        for i, part, count in zip(off, recut, recounted, strict=True):
            fresh[i], counts[i] = part, count
    return fresh, counts
