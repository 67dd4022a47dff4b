"""Tiny random Hugging Face checkpoints written with transformers' own ``save_pretrained``:
a character tokenizer (tokenizers WordLevel in ``PreTrainedTokenizerFast``), a GPT-2 or
Llama causal LM, and a ``Blip2ForConditionalGeneration`` (tiny ViT, Q-Former and LM)."""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
PROMPT_CHARS = "知识：[Round]问答0123456789\n "


def char_vocabulary() -> list[str]:
    """Specials, then every character of the shipped sample dataset and of the chat prompt."""
    from tiktalk.dataset import load_dataset

    dialogues = load_dataset("sample").dialogues
    chars = set(PROMPT_CHARS)
    for context, response in zip(dialogues["context"].to_list(), dialogues["response"].to_list()):
        chars.update("".join(context) + response)
    return SPECIALS + sorted(chars)


def char_tokenizer_fast():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(char_vocabulary())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def lm_config(kind: str, vocab_size: int, width: int = 32):
    from transformers import GPT2Config, LlamaConfig

    ids = {"bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=width, n_layer=2, n_head=4, n_positions=512, **ids)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, **ids)


def save_causal_lm(path: Path, kind: str = "gpt2", seed: int = 0) -> Path:
    """A random causal LM + tokenizer, as ``AutoModelForCausalLM`` / ``AutoTokenizer`` read them."""
    from transformers import AutoModelForCausalLM

    tokenizer = char_tokenizer_fast()
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(lm_config(kind, len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_blip2(path: Path, text_kind: str = "llama", text_width: int = 32, seed: int = 0,
               max_shard_size: str | None = None) -> Path:
    """A random ``Blip2ForConditionalGeneration`` (ViT 16-d, Q-Former 32-d with 8 queries over
    48-d vision tokens, the given LM) + tokenizer; sharded when ``max_shard_size`` is given."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
    )

    tokenizer = char_tokenizer_fast()
    vision = Blip2VisionConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_size=32, patch_size=16)
    qformer = Blip2QFormerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 encoder_hidden_size=48, cross_attention_frequency=2)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                         text_config=lm_config(text_kind, len(tokenizer), text_width).to_dict(), num_query_tokens=8)
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    with torch.no_grad():  # Blip2 initialises its query tokens to zero: make them tell apart
        model.query_tokens.normal_()
        model.vision_model.post_layernorm.weight.normal_(1.0, 0.1)  # LAVIS's ln_vision: not the identity
        model.vision_model.post_layernorm.bias.normal_(0.0, 0.1)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    tokenizer.save_pretrained(path)
    return path
