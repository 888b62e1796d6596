"""Build a tiny random-weight Llama model and its BPE tokenizer, offline, for the real servers.

Runs with the servers' Python (torch, transformers, tokenizers), not the project's:

    .servers/venv/bin/python tests/real_servers/build_tiny_model.py OUT_DIR

Hidden 128, 2 heads of 64 (vLLM's CPU attention needs a head size of 32, 64, 80, ...), 2
layers. The tokenizer is a byte-level BPE trained on the ASCII of Python's own help texts. EOS
and the other special tokens are unreachable, so every request generates exactly `max_tokens`
tokens, each with visible text: residual dimension 0 holds a constant 1 (every embedding has it
and no layer writes to it), the final norm keeps it positive, and the LM head rows of the
special tokens weigh only that dimension, by -1000.
"""

from __future__ import annotations

import sys
from pathlib import Path
from pydoc_data.topics import topics

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<unk>", "<s>", "</s>"]
VOCAB_SIZE = 2048
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def ascii_text() -> list[str]:
    """Python's help topics (about 1 MB of English, always installed), printable ASCII only.

    With no other bytes in the vocabulary every token decodes to text on its own, so servers
    stream one non-empty chunk per token.
    """
    printable = {chr(code) for code in range(32, 127)} | {"\n"}
    return ["".join(char for char in text if char in printable) for text in topics.values()]


def train_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE over `ascii_text`."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        show_progress=False,
    )
    tokenizer.train_from_iterator(ascii_text(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, special_ids: list[int]) -> LlamaForCausalLM:
    """Random weights, seeded, with the special tokens made unreachable."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=special_ids[1],
        eos_token_id=special_ids[2],
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.model.norm.weight[0] = 1.0
        for token_id in special_ids:
            model.lm_head.weight[token_id, :] = 0.0
            model.lm_head.weight[token_id, 0] = -1000.0
    return model


def main(out_dir: str) -> int:
    """Write the model and tokenizer to `out_dir` with save_pretrained."""
    out = Path(out_dir)
    tokenizer = train_tokenizer()
    special_ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIALS]
    model = build_model(len(tokenizer), special_ids)
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
