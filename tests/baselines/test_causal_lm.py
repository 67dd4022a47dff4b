"""Causal-LM (ChatGLM-6B row): prompt format, prompt-masked labels, LoRA, local loading."""

from __future__ import annotations

import shutil

import pytest
import torch

from baselines.causal_lm import CausalLMChat, CausalLMConfig
from baselines.prompt_lm import TINY_LLAMA, build_prompt, dialogue_rounds, knowledge_prompt
from tests.baselines.examples import make_examples
from tiktalk.types import DialogueExample


@pytest.fixture(scope="module")
def model() -> CausalLMChat:
    torch.manual_seed(0)
    return CausalLMChat.from_preset("tiny").eval()


def test_chatglm_prompt_with_knowledge():
    config = CausalLMConfig(lm_config=TINY_LLAMA)
    ex = DialogueExample("x", ["A", "B", "C"], "D", knowledge="K")
    assert build_prompt(ex, config) == "知识：K\n[Round 0]\n问：A\n答：B\n[Round 1]\n问：C\n答："
    assert build_prompt(ex, config.replace(use_knowledge=False)) == (
        "[Round 0]\n问：A\n答：B\n[Round 1]\n问：C\n答：")


def test_unpaired_first_turn_is_an_answer_to_an_empty_question():
    assert dialogue_rounds(["A", "B"]) == ([("", "A")], "B")
    assert dialogue_rounds(["A"]) == ([], "A")
    assert dialogue_rounds(["A", "B", "C", "D"]) == ([("", "A"), ("B", "C")], "D")


def test_custom_template_and_offset():
    config = CausalLMConfig(lm_config=TINY_LLAMA, round_template="Q{i}:{q} A:{r};",
                            round_offset=1, knowledge_template="<{knowledge}>")
    ex = DialogueExample("x", ["A", "B", "C"], knowledge="K")
    assert build_prompt(ex, config) == "<K>Q1:A A:B;Q2:C A:"


def test_labels_are_masked_over_the_prompt(model):
    examples = make_examples()
    batch = model.collate(examples)
    for row, ex in enumerate(examples):
        labels = batch["labels"][row]
        kept = labels != -100
        target = model.tokenizer.encode(ex.response, add_special_tokens=False)
        assert labels[kept].tolist() == target + [model.prompts.eos_id]
        assert torch.equal(batch["input_ids"][row][kept], labels[kept])
        prompt_len = int(batch["attention_mask"][row].sum()) - len(target) - 1
        assert not kept[:prompt_len].any()


def test_knowledge_reaches_the_prompt_tokens(model):
    ex = make_examples()[0]
    knowledge_ids = model.tokenizer.encode(ex.knowledge, add_special_tokens=False)
    with_k = model.collate([ex])["input_ids"][0].tolist()
    off = CausalLMChat(model.config.replace(use_knowledge=False), tokenizer=model.tokenizer,
                       lm=model.lm)
    without_k = off.collate([ex])["input_ids"][0].tolist()
    assert len(with_k) > len(without_k)
    joined = ",".join(map(str, with_k))
    assert ",".join(map(str, knowledge_ids)) in joined
    assert ",".join(map(str, knowledge_ids)) not in ",".join(map(str, without_k))


def test_knowledge_line_is_the_segment_linearised_for_the_budget(model):
    import kg

    graph = kg.load_kg("sample")
    items = [graph.flows(h, fanout=2, top_k_tails=2) for h in ("有人买披萨", "火锅", "有人养仓鼠")]
    budget = model.knowledge_budget()
    assert budget.max_tokens == model.config.max_knowledge_tokens == 32
    assert budget.count_tokens("有人买披萨") == len(model.tokenizer.encode("有人买披萨", add_special_tokens=False))
    full = kg.linearize(items).text
    cut = kg.linearize(items, budget=budget)
    assert cut.truncated and budget.count_tokens(full) > budget.max_tokens
    tokens = model.prompts.tokenizer.encode
    for given in (cut.text, full):  # linearised for the budget, or longer: whole pieces only
        ids = model.prompts.prompt_ids(DialogueExample("x", ["A", "B", "C"] * 40, knowledge=given))
        head = tokens(knowledge_prompt(cut.text, model.config), add_special_tokens=False)
        bos = [model.prompts.bos_id] if model.prompts.bos_id is not None else []
        assert ids[: len(bos) + len(head)] == bos + head
        assert len(ids) == model.config.max_prompt_tokens  # the long dialogue lost its end instead
    assert model.knowledge_budget() is not None
    off = CausalLMChat(model.config.replace(use_knowledge=False), tokenizer=model.tokenizer, lm=model.lm)
    assert off.knowledge_budget() is None


def test_an_overlong_prompt_keeps_its_start_as_chatglms_scripts_do(model):
    """``a_ids[: max_source_length - 1]``: the first round survives; ``prompt_keeps="end"`` keeps the query."""
    ex = DialogueExample("x", [f"第{i}句话" for i in range(40)])
    tokens = lambda text: model.tokenizer.encode(text, add_special_tokens=False)
    start = model.prompts.prompt_ids(ex)
    bos = [model.prompts.bos_id] if model.prompts.bos_id is not None else []
    assert len(start) == model.config.max_prompt_tokens
    assert start[len(bos):len(bos) + 8] == tokens("[Round 0]\n问：")[:8]
    end_model = CausalLMChat(model.config.replace(prompt_keeps="end"), tokenizer=model.tokenizer, lm=model.lm)
    end = end_model.prompts.prompt_ids(ex)
    query = tokens("问：第39句话\n答：")
    assert len(end) == model.config.max_prompt_tokens and end[-len(query):] == query
    assert start[-len(query):] != query
    defaults = CausalLMConfig(lm_path="x")
    assert (defaults.max_prompt_tokens, defaults.max_response_tokens + 1, defaults.max_new_tokens,
            defaults.prompt_keeps) == (64, 64, 128, "start")
    with pytest.raises(ValueError, match=r"prompt_keeps = 'middle'"):
        CausalLMConfig(lm_path="x", prompt_keeps="middle")


def test_lora_targets_the_attention_projections_of_each_architecture():
    """The source's r 8 / alpha 32 / dropout 0.1 over each architecture's query/key/value layers."""
    from baselines.causal_lm import LORA_TARGETS

    torch.manual_seed(0)
    llama = CausalLMChat.from_preset("tiny", lora_r=8)
    lora = llama.lm.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 32, 0.1)
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj"}
    adapted = {n.split(".lora_A.")[0].rsplit(".", 1)[-1] for n, _ in llama.named_parameters() if "lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj"}
    gpt2 = {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 256}
    model = CausalLMChat.from_preset("tiny", lm_config=gpt2, lora_r=8)
    assert list(model.lm.peft_config["default"].target_modules) == ["c_attn"]
    assert LORA_TARGETS["chatglm"] == ["query_key_value"]  # the source's target
    with pytest.raises(ValueError, match=r"lora_target_modules = \['query_key_value'\]: no such layer in this "
                       r"gpt2 model \(its linear layers: .*'c_attn'"):
        CausalLMChat.from_preset("tiny", lm_config=gpt2, lora_r=8, lora_target_modules=["query_key_value"])
    with pytest.raises(ValueError, match=r"no LoRA targets known for model type 'bert'"):
        from baselines.causal_lm import lora_target_modules

        lora_target_modules(_FakeLM(), CausalLMConfig(lm_path="x", lora_r=8))


class _FakeLM(torch.nn.Module):
    """An LM of an architecture LORA_TARGETS does not list."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"model_type": "bert"})()
        self.query = torch.nn.Linear(2, 2)


def test_lora_rows_train_with_the_lora_sources_recipe():
    cls = CausalLMChat
    full, lora = cls.recipe(None), cls.recipe(None, {"lora_r": 8})
    assert (full["lr"], full["global_batch_size"], full.get("lr_schedule", "linear")) == (1e-4, 16, "linear")
    assert (lora["lr"], lora["weight_decay"], lora["warmup_steps"], lora["lr_schedule"],
            lora["global_batch_size"], lora["epochs"]) == (5e-4, 0.1, 1000, "cosine", 32, 1)
    assert cls.recipe("tiny", {"lora_r": 8})["max_steps"] == 300  # a preset's own recipe still rules


def test_batched_generation_matches_one_by_one(model):
    examples = make_examples(with_response=False)
    batched = model.generate(examples, do_sample=False, max_new_tokens=5)
    single = [model.generate([ex], do_sample=False, max_new_tokens=5)[0] for ex in examples]
    assert batched == single


def test_lora_trains_only_lora_parameters(tmp_path):
    torch.manual_seed(0)
    model = CausalLMChat.from_preset("tiny", lora_r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters()
                     if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**model.collate(make_examples()[:2])).loss.backward()
    opt.step()
    for name, p in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(p, frozen_before[name]), name
    model.eval().save_pretrained(tmp_path / "lora")
    loaded = CausalLMChat.from_pretrained(tmp_path / "lora").eval()
    batch = model.collate(make_examples()[:2])
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, model(**batch).logits, atol=1e-6)
    for name, p in loaded.named_parameters():  # the unmerged state, exactly (training resumes)
        assert torch.equal(p, dict(model.named_parameters())[name]), name
    # the directory is also a plain Hugging Face LM with the LoRA update merged in
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "lora")).eval()
    assert not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        plain = merged(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        base_only = model.lm.get_base_model()
        with model.lm.disable_adapter():
            unadapted = base_only(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(plain, model(**batch).logits, atol=1e-5)
    assert not torch.allclose(plain, unadapted, atol=1e-4)  # the merge carried the update


def test_loads_a_local_lm_directory_without_remote_code(tmp_path, model):
    lm_dir = tmp_path / "lm"
    model.lm.save_pretrained(lm_dir)
    model.tokenizer.save_pretrained(lm_dir)
    config = CausalLMConfig(lm_path=str(lm_dir))
    assert config.trust_remote_code is False
    loaded = CausalLMChat(config).eval()
    batch = model.collate(make_examples())
    with torch.no_grad():
        expected = model(**batch).logits
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-6)
    loaded.save_pretrained(tmp_path / "saved")
    shutil.rmtree(lm_dir)  # a saved model no longer needs lm_path
    again = CausalLMChat.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.allclose(again(**batch).logits, expected, atol=1e-6)
