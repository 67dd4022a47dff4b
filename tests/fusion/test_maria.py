"""MariaConfig and MariaForDialogue: configuration, Table 7 rows, BERT loading, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusion.configuration_maria import TINY_BACKBONE, MariaConfig
from fusion.modeling_maria import TIED_KEYS, MariaForDialogue, additive_mask, expand_token_type_rows
from tiktalk.models.base import get_model_class
from tiktalk.models.modalities import parse_modalities
from tiktalk.models.tokenization import CHAR_VOCAB_SIZE, build_char_tokenizer
from tiktalk.paper import TABLE7_ROWS
from tiktalk.types import DialogueExample

SMALL = {"text_budget": 48, "response_budget": 12}


def make_examples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    chars = list("你好我们今天视频真好笑哈哈朋友天气不错想去玩吃饭")
    text = lambda k: "".join(rng.choice(chars, k))
    return [
        DialogueExample(
            dialogue_id=f"m{i}",
            context=[text(4 + i), text(3)],
            response=text(3 + 2 * i),
            frames=rng.normal(size=(3 + i, 2048)).astype(np.float32),
            audio=rng.normal(size=(2 + i, 128)).astype(np.float32),
            knowledge=text(6),
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


# -- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("T", ("text",)),
        ("T+I", ("text", "vision")),
        ("T+I+A", ("text", "vision", "audio")),
        ("T+I+K", ("text", "vision", "knowledge")),
        ("T+I+A+K", ("text", "vision", "audio", "knowledge")),
        ("T+A", ("text", "audio")),
        ("T+K", ("text", "knowledge")),
        ("K+T", ("text", "knowledge")),
        (["audio", "text"], ("text", "audio")),
    ],
)
def test_parse_modalities(spec, expected):
    assert parse_modalities(spec) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modalities": ("text", "x")}, r"unknown modality 'x'"),
        ({"modalities": ("text", "text")}, r"repeated"),
        ({"modalities": ()}, r"at least one modality"),
        ({"modalities": ("vision", "text")}, r"MariaConfig.modalities = \('vision', 'text'\): .*order"),
        ({"modalities": "T+I"}, r"MariaConfig.modalities = 'T\+I': expected a tuple.*parse_modalities"),
        ({"response_budget": 200}, r"response_budget \(200\) must be smaller than text_budget \(180\)"),
        ({"mrp_prob": 1.5}, r"mrp_prob must be in \[0, 1\], got 1.5"),
        ({"mask_token_prob": 0.8, "random_token_prob": 0.3}, r"mask_token_prob \(0.8\) \+ random_token_prob \(0.3\) exceeds 1"),
        ({"max_frames": 0}, r"max_frames must be a positive integer, got 0"),
        ({"backbone": dict(TINY_BACKBONE, hidden_size=33)}, r"hidden_size \(33\) is not a multiple of num_attention_heads \(2\)"),
        ({"backbone": dict(TINY_BACKBONE, max_position_embeddings=100)}, r"text_budget \(180\) exceeds .* \(100\)"),
        ({"attn_implementation": "flash"}, r"'sdpa' or 'eager', got 'flash'"),
    ],
)
def test_config_validation_names_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MariaConfig(**kwargs)


def test_config_json_round_trip(tmp_path):
    config = MariaConfig(modalities=parse_modalities("T+I+K"), knowledge_share=0.3, frame_position_embeddings=True)
    config.save(tmp_path / "c.json")
    again = MariaConfig.load(tmp_path / "c.json")
    assert again == config and again.modality_string == "T+I+K"
    data = json.loads((tmp_path / "c.json").read_text())
    data["bogus"] = 1
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['bogus'\]"):
        MariaConfig.load(tmp_path / "c.json")


def test_registry_knows_maria():
    assert get_model_class("maria") is MariaForDialogue


# -- Table 7 rows by configuration alone ------------------------------------------------------------
@pytest.mark.parametrize("row", sorted(TABLE7_ROWS))
def test_table7_row_builds_runs_and_trains(row):
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities(row), **SMALL)
    batch = model.collate(make_examples(), train=True, generator=torch.Generator().manual_seed(0))
    output = model(**batch)
    assert torch.isfinite(output.loss)
    assert output.logits.shape == (int((batch["labels"] != -100).sum()), CHAR_VOCAB_SIZE)
    assert output.loss_mrp is not None
    assert (output.loss_mcp is not None) == ("T" in row)
    assert (output.loss_mkp is not None) == ("K" in row)
    # the total is the token-weighted mean of the parts
    parts = [(getattr(output, f"loss_{k}"), n) for k, n in output.n_masked.items() if n]
    total = sum(loss * n for loss, n in parts) / sum(n for _, n in parts)
    torch.testing.assert_close(output.loss, total)
    output.loss.backward()
    fusion_keys = {k for k in model.state_dict() if k.startswith("fusion.")}
    expected = set()
    if "I" in row:
        expected |= {"fusion.frame_projection.weight", "fusion.frame_projection.bias"}
    if "A" in row:
        expected |= {"fusion.audio_projection.weight", "fusion.audio_projection.bias"}
    assert fusion_keys == expected
    # every parameter gets a gradient (no unused parameters for DDP)
    assert all(p.grad is not None for p in model.parameters())
    if "I" in row:
        assert model.fusion.frame_projection.weight.grad.abs().sum() > 0


def test_feature_options_add_parameters_and_change_output():
    torch.manual_seed(0)
    plain = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A"), **SMALL).eval()
    torch.manual_seed(0)
    rich = MariaForDialogue.from_preset(
        "tiny", modalities=parse_modalities("T+I+A"), frame_position_embeddings=True, feature_type_embeddings=True, **SMALL
    ).eval()
    assert "fusion.frame_positions.weight" in rich.state_dict()
    missing, _ = rich.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"fusion.frame_positions.weight"}
    batch = plain.collate(make_examples(), train=False)
    with torch.no_grad():
        torch.nn.init.zeros_(rich.fusion.frame_positions.weight)
        rich.bert.embeddings.token_type_embeddings.weight[3:].zero_()
        torch.testing.assert_close(rich(**batch).logits, plain(**batch).logits)  # zero rows = Maria
        rich.bert.embeddings.token_type_embeddings.weight[3].normal_()
        assert not torch.allclose(rich(**batch).logits, plain(**batch).logits)


# -- the mask in the model: the source never sees the response; the response is causal ---------------
def test_response_cannot_leak_into_source_or_earlier_response():
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A+K"), **SMALL).eval()
    batch = model.collate(make_examples(), train=False)
    changed = {k: v.clone() for k, v in batch.items()}
    j = 4  # a response position inside every example's response
    changed["input_ids"][:, j] = 2000
    with torch.no_grad():
        hidden = model.encode(model.embed(batch["input_ids"], batch["token_type_ids"], batch["position_ids"], batch["frames"], batch["audio"]), batch["attention_mask"])
        hidden2 = model.encode(model.embed(changed["input_ids"], changed["token_type_ids"], changed["position_ids"], changed["frames"], changed["audio"]), changed["attention_mask"])
    R = model.config.response_budget
    valid = batch["segment_ids"] >= 0
    torch.testing.assert_close(hidden[:, R:][valid[:, R:]], hidden2[:, R:][valid[:, R:]])  # source untouched
    torch.testing.assert_close(hidden[:, :j], hidden2[:, :j])  # earlier response untouched
    assert not torch.allclose(hidden[:, j + 1], hidden2[:, j + 1])  # later response sees it


def test_additive_mask_values():
    mask = torch.tensor([[[True, False, False], [True, True, False], [False, False, False]]])
    out = additive_mask(mask, torch.float32)
    low = torch.finfo(torch.float32).min
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0].tolist() == [[0, low, low], [0, 0, low], [low, low, 0]]  # padding row sees itself


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_padding_rows_do_not_poison_the_batch(dtype, attn_implementation):
    """With the dtype minimum cast to -inf, a fully masked padding row would turn NaN and spread
    (it does with eager attention when padding rows are not given their own diagonal)."""
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset(
        "tiny", modalities=parse_modalities("T+I+A+K"), attn_implementation=attn_implementation, **SMALL
    ).eval()
    batch = model.collate(make_examples(), train=True, generator=torch.Generator().manual_seed(0))
    assert not batch["attention_mask"].any(-1).all()  # the batch has padding rows
    model = model.to(dtype)
    batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
    with torch.no_grad():
        hidden = model.embed(batch["input_ids"], batch["token_type_ids"], batch["position_ids"], batch["frames"], batch["audio"])
        mask = additive_mask(batch["attention_mask"], torch.float32).to(dtype)  # what autocast does to it
        assert torch.isinf(mask).any()
        out = model.bert.encoder(hidden, attention_mask=mask).last_hidden_state
    assert torch.isfinite(out).all()


# -- BERT checkpoints ----------------------------------------------------------------------------
def _tiny_bert_config():
    from transformers import BertConfig

    return BertConfig(**dict(TINY_BACKBONE, vocab_size=CHAR_VOCAB_SIZE))


def test_from_pretrained_bert_masked_lm_keeps_keys(tmp_path, tokenizer):
    """The ``"tied"`` output layer: BERT's MLM head loaded and tied (Maria's own is the default)."""
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    bert = BertForMaskedLM(_tiny_bert_config())
    bert.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(str(tmp_path / "bert"))
    model = MariaForDialogue.from_pretrained(tmp_path / "bert", modalities=parse_modalities("T+I+A+K"),
                                             output_layer="tied", **SMALL)
    bert_state = bert.state_dict()
    maria_state = model.state_dict()
    bert_keys = {k for k in bert_state if not k.endswith("position_ids")}
    # BERT's keys load unchanged; everything new lives under fusion.
    assert bert_keys <= set(maria_state)
    assert {k for k in set(maria_state) - bert_keys if not k.startswith("fusion.")} == set()
    assert set(maria_state) - bert_keys == {
        "fusion.frame_projection.weight", "fusion.frame_projection.bias",
        "fusion.audio_projection.weight", "fusion.audio_projection.bias",
    }
    for key in bert_keys - {"bert.embeddings.token_type_embeddings.weight"}:
        torch.testing.assert_close(maria_state[key], bert_state[key], msg=key)
    types = maria_state["bert.embeddings.token_type_embeddings.weight"]
    bert_types = bert_state["bert.embeddings.token_type_embeddings.weight"]
    assert types.shape == (5, 32)
    torch.testing.assert_close(types[:2], bert_types)
    torch.testing.assert_close(types[2], bert_types[1])  # knowledge starts as context
    assert (types[3:] == 0).all()  # feature rows start at Maria's "no type embedding"
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.load_report["initialised"] == sorted(set(maria_state) - bert_keys)
    # same logits as BERT on a text-only sequence with type ids 0/1 and a full mask
    model.eval()
    bert.eval()
    ids = torch.tensor([[101, 800, 801, 102, 900, 901, 102]])
    with torch.no_grad():
        expected = bert(input_ids=ids).logits
        hidden = model.encode(model.embed(ids, torch.zeros_like(ids), torch.arange(7)[None]), torch.ones(1, 7, 7, dtype=torch.bool))
        torch.testing.assert_close(model.cls(hidden), expected)


def test_init_from_bert_builds_marias_own_output_layer(tmp_path, tokenizer):
    """Maria's layer (modeling_bert.py L491-496): a fresh transform and a fresh decoder with no
    bias, untied from the word embeddings; BERT's MLM head is ignored, the backbone loads."""
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    bert = BertForMaskedLM(_tiny_bert_config())
    with torch.no_grad():  # a head that a load would visibly copy
        bert.cls.predictions.transform.dense.weight.fill_(0.5)
        bert.cls.predictions.bias.fill_(3.0)
    bert.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(str(tmp_path / "bert"))
    model = MariaForDialogue.from_pretrained(tmp_path / "bert", modalities=parse_modalities("T+K"), **SMALL)
    assert model.config.output_layer == "maria"
    state = model.state_dict()
    head = {k for k in state if k.startswith("cls.")}
    assert head == {"cls.transform.dense.weight", "cls.transform.dense.bias", "cls.transform.LayerNorm.weight",
                    "cls.transform.LayerNorm.bias", "cls.decoder.weight"}
    assert model.cls.decoder.bias is None
    assert model.cls.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    assert not torch.equal(model.cls.decoder.weight, model.bert.embeddings.word_embeddings.weight)
    assert not (model.cls.transform.dense.weight == 0.5).any()  # fresh, not BERT's
    assert {k for k in model.load_report["ignored"] if k.startswith("cls.predictions.")} >= {
        "cls.predictions.bias", "cls.predictions.transform.dense.weight"}
    assert sorted(head) == [k for k in model.load_report["initialised"] if k.startswith("cls.")]
    torch.testing.assert_close(model.bert.encoder.layer[0].attention.self.query.weight,
                               bert.bert.encoder.layer[0].attention.self.query.weight)
    # training moves the decoder and leaves the word embeddings' other rows alone
    model.train()
    batch = model.collate(make_examples(2), train=True, generator=torch.Generator().manual_seed(0))
    model(**batch).loss.backward()
    assert model.cls.decoder.weight.grad is not None and model.cls.decoder.weight.grad.abs().sum() > 0
    # saved and loaded: the same layer, equal logits
    model.save_pretrained(tmp_path / "run")
    loaded = MariaForDialogue.from_pretrained(tmp_path / "run")
    assert loaded.config.output_layer == "maria"
    model.eval()
    batch = model.collate(make_examples(2), train=False)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_a_save_without_output_layer_loads_the_tied_head(tmp_path):
    """Saves from before the option had BERT's tied head: they load as ``"tied"``."""
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T"), **SMALL)
    model.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "tiktalk_model.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["output_layer"]
    config_file.write_text(json.dumps(saved))
    loaded = MariaForDialogue.from_pretrained(tmp_path / "old")
    assert loaded.config.output_layer == "tied"
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="output_layer must be one of"):
        MariaConfig(output_layer="shared")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['output_layers'\]"):
        MariaForDialogue.from_pretrained(tmp_path / "old", output_layers="tied")


def test_init_from_bert_tokenises_with_its_own_wordpiece(tmp_path):
    """Under ``--init`` Maria's text goes through the BERT directory's own tokenizer (WordPiece
    for Latin letters and digits), the knowledge budget counts with it, a save keeps it; the
    ``char`` option restores one id per character."""
    from transformers import BertConfig, BertForMaskedLM

    from tests.bert_vocab import CHINESE, WORDPIECE_VOCAB, write_wordpiece_vocab
    from tiktalk.runs.budget import knowledge_budget

    torch.manual_seed(1)
    BertForMaskedLM(BertConfig(**dict(TINY_BACKBONE, vocab_size=len(WORDPIECE_VOCAB)))).save_pretrained(tmp_path / "bert")
    write_wordpiece_vocab(tmp_path / "bert")
    model = MariaForDialogue.from_pretrained(tmp_path / "bert", modalities=parse_modalities("T+K"), **SMALL)
    assert model.config.tokenization == "wordpiece"
    vocab = model.text_encoder.vocab
    example = DialogueExample("w", ["你好666hhh", "哈哈"], response="HHH好笑", knowledge="哈哈2333333")
    batch = model.collate([example], train=False)
    ids = batch["input_ids"][0].tolist()
    response = [vocab[t] for t in ("[CLS]", "hh", "##h", "好", "笑", "[SEP]")]
    context = [vocab[t] for t in ("你", "好", "666", "##hh", "##h", "[SEP]", "哈", "哈", "[SEP]")]
    knowledge = [vocab[t] for t in ("哈", "哈", "233", "##33", "##33", "[SEP]")]
    R = SMALL["response_budget"]
    assert ids[:6] == response and ids[R:] == context + knowledge
    budget = model.knowledge_budget()
    assert budget.tokenizer == model.text_encoder.fingerprint and budget.tokenizer.startswith("wordpiece:")
    assert budget.count_tokens("哈哈2333333") == 5
    # the budget read without building the model, from the BERT directory and from a save, agrees
    from_dir = knowledge_budget("maria", str(tmp_path / "bert"), modalities=("text", "knowledge"), **SMALL)
    assert from_dir.as_dict() == budget.as_dict() and from_dir.count_tokens("哈哈2333333") == 5
    model.save_pretrained(tmp_path / "run")
    loaded = MariaForDialogue.from_pretrained(tmp_path / "run")
    assert loaded.config.tokenization == "wordpiece"
    assert loaded.collate([example], train=False)["input_ids"].tolist() == batch["input_ids"].tolist()
    from_save = knowledge_budget("maria", str(tmp_path / "run"))
    assert from_save.as_dict() == budget.as_dict() and from_save.count_tokens("哈哈2333333") == 5
    assert model.eval().generate([example], max_length=6)[0] == loaded.eval().generate([example], max_length=6)[0]
    # the char option: one id per character over the same vocabulary
    chars = MariaForDialogue.from_pretrained(tmp_path / "bert", modalities=parse_modalities("T+K"),
                                             tokenization="char", **SMALL)
    assert chars.text_encoder.encode("666hhh") == [vocab["6"]] * 3 + [vocab["h"]] * 3
    assert chars.knowledge_budget().count_tokens("哈哈2333333") == 9
    assert set(CHINESE) <= set(vocab)
    with pytest.raises(ValueError, match=r"tokenization must be one of \['wordpiece', 'char'\], got 'bpe'"):
        MariaConfig(tokenization="bpe")


def test_a_save_without_tokenization_keeps_one_id_per_character(tmp_path):
    """Saves from before the option counted characters: they load (and budget) as ``"char"``."""
    from tiktalk.runs.budget import knowledge_budget

    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"), tokenization="wordpiece", **SMALL)
    assert model.config.tokenization == "wordpiece"
    assert MariaForDialogue.from_preset("tiny").config.tokenization == "char"
    model.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "tiktalk_model.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["tokenization"]
    config_file.write_text(json.dumps(saved))
    loaded = MariaForDialogue.from_pretrained(tmp_path / "old")
    assert loaded.config.tokenization == "char"
    assert loaded.text_encoder.encode("hello") == [loaded.text_encoder.vocab[c] for c in "hello"]
    assert knowledge_budget("maria", str(tmp_path / "old")).tokenizer.startswith("char:")
    assert model.knowledge_budget().tokenizer.startswith("wordpiece:")


def test_from_pretrained_bare_bert_model_with_old_layernorm_names(tmp_path):
    from safetensors.torch import save_file
    from transformers import BertModel

    torch.manual_seed(2)
    bert = BertModel(_tiny_bert_config())
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v.contiguous()
             for k, v in bert.state_dict().items()}
    (tmp_path / "b").mkdir()
    save_file(state, str(tmp_path / "b" / "model.safetensors"))
    bert.config.to_json_file(str(tmp_path / "b" / "config.json"))
    model = MariaForDialogue.from_pretrained(tmp_path / "b", modalities=parse_modalities("T"), **SMALL)
    torch.testing.assert_close(model.bert.encoder.layer[1].output.LayerNorm.weight, bert.encoder.layer[1].output.LayerNorm.weight)
    assert "bert.pooler.dense.weight" in model.load_report["ignored"]
    assert any(k.startswith("cls.") for k in model.load_report["initialised"])  # no MLM head in a BertModel


def test_from_pretrained_rejects_mismatched_backbone(tmp_path):
    from transformers import BertForMaskedLM

    bert = BertForMaskedLM(_tiny_bert_config())
    bert.save_pretrained(tmp_path / "bert")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    config["hidden_size"] = 64
    config["intermediate_size"] = 64
    (tmp_path / "bert" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"bert: bert\.embeddings\.\S+ has shape \(32,?\S*\), the model expects \(64,?\S*\)"):
        MariaForDialogue.from_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="neither a Maria checkpoint"):
        MariaForDialogue.from_pretrained(tmp_path)


def test_save_pretrained_round_trip_equal_logits(tmp_path):
    from safetensors import safe_open

    torch.manual_seed(3)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A+K"), knowledge_share=0.4, **SMALL)
    model.save_pretrained(tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"tiktalk_model.json", "model.safetensors", "tokenizer.json"} <= files
    with safe_open(str(tmp_path / "run" / "model.safetensors"), "pt") as f:
        assert not set(TIED_KEYS) & set(f.keys())
        assert f.metadata()["transformers"]
    loaded = MariaForDialogue.from_pretrained(tmp_path / "run")
    assert loaded.config == MariaConfig.from_dict({**model.config.to_dict(), "tokenizer_vocab_size": CHAR_VOCAB_SIZE})
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    batch = model.collate(make_examples(), train=False)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"maria: unknown preset 'huge'; known: \['tiny'\]"):
        MariaForDialogue.from_preset("huge")


def test_expand_token_type_rows():
    rows = torch.arange(6.0).view(2, 3)
    out = expand_token_type_rows(rows, 5)
    assert out.tolist() == [[0, 1, 2], [3, 4, 5], [3, 4, 5], [0, 0, 0], [0, 0, 0]]


def test_pytorch_model_bin_needs_the_opt_in(tmp_path, tokenizer):
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    bert = BertForMaskedLM(_tiny_bert_config())
    bert.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(str(tmp_path / "bert"))
    (tmp_path / "bert" / "model.safetensors").unlink()
    torch.save(bert.state_dict(), tmp_path / "bert" / "pytorch_model.bin")  # an old-style checkpoint
    with pytest.raises(ValueError, match=r"pytorch_model\.bin: a pickle.*trust_pickle=True"):
        MariaForDialogue.from_pretrained(tmp_path / "bert", modalities=parse_modalities("T"), **SMALL)
    model = MariaForDialogue.from_pretrained(tmp_path / "bert", trust_pickle=True, modalities=parse_modalities("T"), **SMALL)
    torch.testing.assert_close(model.state_dict()["bert.embeddings.word_embeddings.weight"],
                               bert.state_dict()["bert.embeddings.word_embeddings.weight"])


def test_the_pickle_reader_itself_refuses_without_the_opt_in(tmp_path, monkeypatch):
    from tiktalk.errors import UsageError
    from tiktalk.models.weights import read_torch_pickle

    bin_file = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(2)}, bin_file)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("opened a pickle without the opt-in"))
    for refused in (False, "yes", 1):  # only True opts in
        with pytest.raises(UsageError, match=r"pytorch_model\.bin: a pickle.*trust_pickle=True"):
            read_torch_pickle(bin_file, trust_pickle=refused)
    monkeypatch.undo()
    assert torch.equal(read_torch_pickle(bin_file, trust_pickle=True)["w"], torch.ones(2))
