"""``--init`` from real Hugging Face checkpoints (tiny, random, written by transformers itself):
a plain causal LM for ``causal-lm``; a ``Blip2ForConditionalGeneration`` and/or a causal LM
(a fine-tuned ``causal-lm`` run included) for ``blip2-*``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from baselines.blip2 import Blip2ImgChat, Blip2VideoChat
from baselines.causal_lm import CausalLMChat
from tests.baselines.examples import make_examples
from tests.baselines.hf_checkpoints import save_blip2, save_causal_lm
from tiktalk.commands.main import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {
        "gpt2": save_causal_lm(root / "gpt2", "gpt2"),
        "blip2": save_blip2(root / "blip2"),
        "blip2_sharded": save_blip2(root / "blip2_sharded", max_shard_size="20KB"),
        "root": root,
    }


def checkpoint_tensors(path, prefix):
    """``prefix``-ed tensors of a (possibly sharded) safetensors checkpoint, prefix removed."""
    files = sorted(path.glob("*.safetensors"))
    out = {}
    for file in files:
        out.update({k.removeprefix(prefix): v for k, v in load_file(str(file)).items() if k.startswith(prefix)})
    return out


def assert_same_state(module, expected: dict[str, torch.Tensor]):
    state = module.state_dict()
    missing = set(expected) - set(state)
    assert not missing, sorted(missing)[:3]
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


def run_cli(*argv: str) -> None:
    assert main(list(argv)) == 0


def train_and_generate(run, model: str, *extra: str) -> list[dict]:
    run_cli("train", "--model", model, "--data", "sample", "--out", str(run), "--max-steps", "2",
            "--batch-size", "4", "--save-every", "2", "--no-progress", *extra)
    preds = run.parent / f"{run.name}.jsonl"
    run_cli("generate", "--run", str(run), "--data", "sample", "--split", "test", "--limit", "3",
            "--max-length", "4", "--out", str(preds))
    rows = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all(isinstance(r["response"], str) for r in rows)
    return rows


# ------------------------------------------------------------------------------ causal-lm


def test_causal_lm_reads_a_plain_hugging_face_directory(ckpt):
    model = CausalLMChat.from_pretrained(ckpt["gpt2"])
    assert type(model.lm).__name__ == "GPT2LMHeadModel"
    assert_same_state(model.lm, checkpoint_tensors(ckpt["gpt2"], ""))
    assert model.prompts.eos_id == model.tokenizer.convert_tokens_to_ids("</s>")


@pytest.fixture(scope="module")
def lm_run(ckpt):
    """``tiktalk train --model causal-lm --init GPT2_DIR``: the fine-tuned LM of the BLIP-2 runs."""
    run = ckpt["root"] / "lm_run"
    train_and_generate(run, "causal-lm", "--init", str(ckpt["gpt2"]), "--lr", "1e-2")
    return run


def test_a_causal_lm_run_saves_its_lm_in_hugging_face_form(lm_run, ckpt):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    saved = lm_run / "model"
    assert (saved / "config.json").exists() and (saved / "tiktalk_model.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(str(saved)).eval()
    ours = CausalLMChat.from_pretrained(saved).eval()
    batch = ours.collate(make_examples())
    with torch.no_grad():
        assert torch.equal(plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                           ours(**batch).logits)
    assert len(AutoTokenizer.from_pretrained(str(saved))) == len(ours.tokenizer)
    trained = checkpoint_tensors(saved, "")
    start = checkpoint_tensors(ckpt["gpt2"], "")
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # it was fine-tuned


# ------------------------------------------------------------------------------ blip2


@pytest.mark.parametrize("which", ["blip2", "blip2_sharded"])
def test_blip2_loads_qformer_queries_projection_and_lm_from_the_checkpoint(ckpt, which):
    model = Blip2ImgChat.from_pretrained(ckpt[which])
    c = model.config
    assert (c.num_query_tokens, c.qformer_hidden_size, c.qformer_layers, c.encoder_hidden_size) == (8, 32, 2, 48)
    assert_same_state(model.qformer, checkpoint_tensors(ckpt[which], "qformer."))
    assert_same_state(model.language_projection, checkpoint_tensors(ckpt[which], "language_projection."))
    assert torch.equal(model.query_tokens.data, checkpoint_tensors(ckpt[which], "query_tokens")[""])
    assert_same_state(model.lm, checkpoint_tensors(ckpt[which], "language_model."))
    assert model.frame_proj.in_features == 2048 and model.frame_proj.out_features == 48
    # LAVIS's ln_vision is Hugging Face's vision_model.post_layernorm
    post = checkpoint_tensors(ckpt[which], "vision_model.post_layernorm.")
    assert torch.equal(model.ln_vision.weight, post["weight"]) and torch.equal(model.ln_vision.bias, post["bias"])
    assert not torch.equal(post["weight"], torch.ones_like(post["weight"]))  # a load, not a fresh LayerNorm


def test_blip2_checkpoint_with_another_lm(ckpt, tmp_path):
    same_width = Blip2VideoChat.from_pretrained(ckpt["blip2"], lm_path=str(ckpt["gpt2"]))
    assert type(same_width.lm).__name__ == "GPT2LMHeadModel"
    assert_same_state(same_width.lm, checkpoint_tensors(ckpt["gpt2"], ""))
    assert_same_state(same_width.qformer, checkpoint_tensors(ckpt["blip2"], "qformer."))
    assert_same_state(same_width.language_projection, checkpoint_tensors(ckpt["blip2"], "language_projection."))
    wide = save_blip2(tmp_path / "wide", text_width=64)
    with pytest.warns(UserWarning, match="language projection maps to width 64, the LM is 32 wide"):
        model = Blip2VideoChat.from_pretrained(wide, lm_path=str(ckpt["gpt2"]))
    assert_same_state(model.qformer, checkpoint_tensors(wide, "qformer."))


def test_blip2_trains_and_generates_from_a_blip2_checkpoint(ckpt):
    train_and_generate(ckpt["root"] / "blip2_img_run", "blip2-img", "--init", str(ckpt["blip2"]))


def test_a_fine_tuned_causal_lm_run_is_the_lm_of_blip2(ckpt, lm_run):
    """The paper's "BLIP-2 with the fine-tuned ChatGLM-6B": Q-Former from a BLIP-2 checkpoint,
    LM from a causal-lm run (frozen: after training the run's LM is still the causal-lm one)."""
    run = ckpt["root"] / "blip2_video_run"
    train_and_generate(run, "blip2-video", "--init", str(ckpt["blip2"]), "--lm", str(lm_run))
    model = Blip2VideoChat.from_pretrained(run / "model")
    assert_same_state(model.lm, checkpoint_tensors(lm_run / "model", ""))
    alone = Blip2ImgChat.from_pretrained(lm_run)  # the run as --init: BLIP-2's own sizes, new Q-Former
    assert alone.config.qformer_hidden_size == 768 and alone.config.num_query_tokens == 32
    assert_same_state(alone.lm, checkpoint_tensors(lm_run / "model", ""))


def test_init_errors_name_what_is_wrong(ckpt, tmp_path, capsys):
    argv = ["train", "--data", "sample", "--out", str(tmp_path / "r"), "--max-steps", "1"]
    assert main([*argv, "--model", "dialogpt", "--preset", "tiny", "--lm", str(ckpt["gpt2"])]) == 2
    assert "--lm applies to models over a causal LM (blip2-*), not dialogpt" in capsys.readouterr().err
    assert main([*argv, "--model", "blip2-img", "--init", str(ckpt["gpt2"]), "--lm", str(ckpt["gpt2"])]) == 2
    assert "is a language model already; lm_path (--lm) goes with a BLIP-2 checkpoint" in capsys.readouterr().err
    assert main([*argv, "--model", "causal-lm", "--init", str(tmp_path)]) == 2
    assert "neither a saved causal-lm model (tiktalk_model.json) nor a Hugging Face causal-LM directory" \
        in capsys.readouterr().err
    dialogpt = tmp_path / "dialogpt"
    from baselines.dialogpt import DialoGPTChat

    DialoGPTChat.from_preset("tiny").save_pretrained(dialogpt)
    assert main([*argv, "--model", "blip2-video", "--init", str(dialogpt)]) == 2
    assert "holds a saved dialogpt model" in capsys.readouterr().err
