"""Cleaning rules one by one, tree splitting, split determinism and the raw-input errors."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiktalk.build import BuildConfig, clean_and_split
from tiktalk.cleaning import (
    blocked_word,
    clean_text,
    clean_title,
    extract_emoticons,
    is_mergeable,
    merge_repeats,
    remove_mentions,
)
from tiktalk.dataset import DatasetFormatError, sample_raw_dir, split_of, synthetic_features
from tiktalk.raw import (
    RawComment,
    RawVideo,
    children_map,
    read_raw_comments,
    read_raw_videos,
    root_to_leaf_chains,
)

# ---------------------------------------------------------------------------- text rules


@pytest.mark.parametrize("text, expected", [
    ("@小胖 学会了给我做", "学会了给我做"),
    ("快看@阿花，你家豆豆", "快看 ，你家豆豆"),
    ("@a @b 一起来", "一起来"),
    ("没有提到别人", "没有提到别人"),
    # a name runs to whitespace or punctuation: without either the rest of the text goes too
    ("@小李子快来看", ""),
])
def test_remove_mentions(text, expected):
    assert " ".join(remove_mentions(text).split()) == expected


def test_extract_emoticons_moves_bracketed_and_emoji_in_order():
    text, found = extract_emoticons("笑死[捂脸]太可爱了😂👍[赞]")
    assert found == ["[捂脸]", "😂", "👍", "[赞]"]
    assert " ".join(text.split()) == "笑死 太可爱了"
    # a bracket holding spaces or more than 8 characters is text, not an emoticon
    assert extract_emoticons("[这是一个很长很长的括号注释]")[1] == []


@pytest.mark.parametrize("text, expected", [
    ("哈哈哈", "哈哈"),
    ("哈哈哈哈哈哈哈哈哈哈", "哈哈"),
    ("哈哈", "哈哈"),  # doubled words stay: 谢谢, 看看
    ("谢谢你", "谢谢你"),
    ("2333333", "2333333"),  # digits are never merged (issue 11); was "233"
    ("！！！！", "！！"),
    ("!!!!", "!!"),
    ("～～～～～", "～～"),
    ("😂😂😂😂", "😂😂"),
    ("。。。。。。", "。。"),
    ("笑死笑死笑死", "笑死"),
    ("好呀好呀", "好呀好呀"),  # a unit twice is ordinary speech
    ("啊啊啊啊啊太美了", "啊啊太美了"),
])
def test_merge_repeats(text, expected):
    assert merge_repeats(text) == expected


@given(st.integers(min_value=1, max_value=40))
def test_laughter_of_any_length_becomes_one_form(n):
    assert merge_repeats("哈" * n + "好笑") == ("哈" * min(n, 2)) + "好笑"
    if n >= 2:
        assert merge_repeats("哈" * n) == merge_repeats("哈哈")


@given(st.text(alphabet="哈啊好的笑死2 3!a", max_size=30))
@settings(max_examples=200)
def test_merge_repeats_is_idempotent_and_never_grows(text):
    once = merge_repeats(text)
    assert merge_repeats(once) == once
    assert len(once) <= len(text)
    # no CJK character, punctuation or space three times in a row remains; digits and letters may
    assert all(m.group(1) in "23a" for m in re.finditer(r"(.)\1\1", once))


@pytest.mark.parametrize("text", [
    "46000", "涨到46000了", "卖了1000多", "2000万粉丝", "666", "主播666666", "2333333笑死我了",
    "ok ok", "ok ok ok", "ok ok ok ", "hhhh", "hhhhhh笑死", "hahaha", "aaa", "Zzz", "1000000",
    "１０００多", "ＡＡＡ", "一〇〇〇",  # full-width digits and letters, the CJK zero
])
def test_numbers_and_latin_words_survive_cleaning(text):
    # Issue 11: "46000" came out "4600", "1000多" "100多", "2000万" "200万", "666" "66". Digits
    # and letters (ASCII or full-width) are never merged, alone or as a repeated unit, so
    # Latin laughter ("hhhh", "hahaha") stays as written too: only CJK laughter has one form.
    assert merge_repeats(text) == text
    assert clean_text(text).text == text.strip()
    assert not clean_text(text).had_repeat


@pytest.mark.parametrize("text, expected", [
    ("哈哈哈哈", "哈哈"),
    ("哈哈哈哈666", "哈哈666"),
    ("666哈哈哈哈", "666哈哈"),
    ("啊啊啊啊1000多！！！！", "啊啊1000多！！"),
    ("ok哈哈哈哈ok", "ok哈哈ok"),
    ("笑死笑死笑死2000万", "笑死2000万"),
    ("12笑死笑死笑死", "12笑死"),
    ("hhhh哈哈哈哈hhhh", "hhhh哈哈hhhh"),
])
def test_cjk_runs_next_to_numbers_still_merge(text, expected):
    assert merge_repeats(text) == expected
    assert clean_text(text).text == expected


def test_is_mergeable():
    assert all(is_mergeable(ch) for ch in "哈啊的。！，!?.～~😂👍\U0001F3FBー々가あ")
    assert not any(is_mergeable(ch) for ch in "0123456789azAZ０９ＡＺａｚ〇 \u3000éЖ")


_CJK_WORDS = ["哈", "哈哈", "笑死", "你家豆豆", "，", "。", "！", "666", "ok"]
_ALNUM = st.text(alphabet="0123456789abcxyzABCXYZ", min_size=1, max_size=8)
_NOISE = ["哈", "哈哈哈", "笑死", "啊", "，", "！", "！！！", "～", "。", "[捂脸]", "😂", "👍🏻", "@小王 ", " ", "好"]


@given(st.lists(st.tuples(st.lists(st.sampled_from(_NOISE), max_size=6), _ALNUM), min_size=1, max_size=5),
       st.lists(st.sampled_from(_NOISE), max_size=6))
@settings(max_examples=300)
def test_digits_and_letters_in_cjk_text_are_preserved(parts, tail):
    # any run of digits and ASCII letters, embedded anywhere in CJK text with laughter,
    # punctuation runs, emoticons and mentions, comes out of the comment cleaner as it went in
    text = "".join("".join(noise) + alnum for noise, alnum in parts) + "".join(tail)
    alnums = [alnum for _, alnum in parts]
    out = clean_text(text).text
    assert re.sub(r"[^0-9A-Za-z]", "", out) == "".join(alnums)
    assert all(alnum in out for alnum in alnums)
    assert all(alnum in merge_repeats(text) for alnum in alnums)


def test_merge_repeats_respects_config():
    assert merge_repeats("哈哈哈哈", min_run=2, keep=1) == "哈"
    with pytest.raises(ValueError, match=r"repeat_keep \(3\) < repeat_min_run \(3\)"):
        BuildConfig(repeat_min_run=3, repeat_keep=3)


def test_blocked_word_case_insensitive_and_configurable():
    assert blocked_word("你这是脑残行为吧", ("脑残",)) == "脑残"
    assert blocked_word("Shabi", ("SHABI",)) == "SHABI"
    assert blocked_word("正常评论", ("脑残",)) is None


@pytest.mark.parametrize("text, expected", [
    ("比个[捂脸] 跟你们说", "比个跟你们说"),  # issue 11: came out "比个 跟你们说"
    ("比个[捂脸]跟你们说", "比个跟你们说"),
    ("太好笑了😂😂 哈哈", "太好笑了哈哈"),
    ("快看@阿花，你家豆豆", "快看，你家豆豆"),
    ("我也想去 @小美 下次一起", "我也想去下次一起"),
    ("好的[赞]!", "好的!"),
    ("(笑死[捂脸])", "(笑死)"),
    ("  @小王  哈哈 [赞]  ", "哈哈"),
    ("[赞]\n\t[赞]开头", "开头"),
    # a space between Latin words (or a word and CJK) stays one space
    ("ok [赞] ok", "ok ok"),
    ("ok[赞]ok", "ok ok"),
    ("I like it[赞] 真的", "I like it 真的"),
    ("666 @小王 真厉害", "666 真厉害"),
    # spaces the writer typed away from any removal are collapsed, not dropped
    ("你好   世界", "你好 世界"),
    ("哈哈[赞] 你好 世界", "哈哈你好 世界"),
])
def test_removals_leave_no_stray_space(text, expected):
    assert clean_text(text).text == expected


_WORDS = ["哈", "哈哈", "笑死", "你家豆豆", "，", "。", "！！", "好的", "“真的”"]
_REMOVED = ["[捂脸]", "[赞] ", " [赞]", "😂", " 😂👍 ", "@小王 ", " @阿花 ", "\u3000[流泪]", "\n@博主\n"]


@given(st.lists(st.sampled_from(_WORDS + _REMOVED), max_size=12))
@settings(max_examples=300)
def test_removing_noise_from_cjk_text_leaves_no_space(tokens):
    # mentions and emoticons (with spaces next to them) dropped anywhere into CJK text leave
    # nothing behind: the result is the CJK words alone, run together and merged
    out = clean_text("".join(tokens)).text
    assert out == merge_repeats("".join(t for t in tokens if t in _WORDS))
    assert " " not in out


def test_clean_text_applies_all_rules_in_order():
    ct = clean_text("@小王 哈哈哈哈哈扎心了[捂脸]  😂")
    assert ct.text == "哈哈扎心了"
    assert ct.emoticons == ["[捂脸]", "😂"]
    assert ct.had_mention and ct.had_repeat
    assert clean_text("[赞][赞]").text == ""


# ---------------------------------------------------------------------------- trees


def test_root_to_leaf_chains_small_tree():
    #   a -> b -> c ; a -> d ; e
    parents = {"a": None, "b": "a", "c": "b", "d": "a", "e": None}
    assert root_to_leaf_chains(parents) == [["a", "b", "c"], ["a", "d"], ["e"]]


def _forest(draw_parents: list[int]) -> dict[str, str | None]:
    # node i's parent is an earlier node (value < i) or None (value < 0)
    return {f"n{i}": (None if p < 0 or i == 0 else f"n{p % i}") for i, p in enumerate(draw_parents)}


@given(st.lists(st.integers(min_value=-3, max_value=50), min_size=1, max_size=40))
@settings(max_examples=200)
def test_chains_property(raw_parents):
    parents = _forest(raw_parents)
    chains = root_to_leaf_chains(parents)
    kids = children_map(parents)
    leaves = [n for n in parents if n not in kids]
    assert sorted(ch[-1] for ch in chains) == sorted(leaves)  # one chain per leaf
    for ch in chains:
        assert parents[ch[0]] is None  # starts at a root
        assert all(parents[b] == a for a, b in itertools.pairwise(ch))  # follows reply links
    # slow obvious version: walk up from each leaf
    slow = []
    for leaf in leaves:
        path = [leaf]
        while parents[path[-1]] is not None:
            path.append(parents[path[-1]])
        slow.append(path[::-1])
    assert sorted(map(tuple, chains)) == sorted(map(tuple, slow))


def test_split_of_is_deterministic_and_follows_fractions():
    ids = [f"video{i}" for i in range(4000)]
    a = [split_of(v, 0.1, 0.2) for v in ids]
    assert a == [split_of(v, 0.1, 0.2) for v in ids]
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert abs(share["val"] - 0.1) < 0.02 and abs(share["test"] - 0.2) < 0.02
    assert [split_of(v, 0.1, 0.2, seed="other") for v in ids] != a  # the salt matters
    assert all(split_of(v, 0.0, 0.0) == "train" for v in ids[:100])


def test_synthetic_features_seeded_and_shaped():
    f1 = synthetic_features("v01", "frames", 8)
    assert f1.shape == (8, 2048) and (f1 >= 0).all()
    assert (f1 == synthetic_features("v01", "frames", 8)).all()
    assert not (f1 == synthetic_features("v02", "frames", 8)).all()
    assert synthetic_features("v01", "audio", 3).shape == (3, 128)


# ---------------------------------------------------------------------------- the pure build


def _video(vid: str, likes: int = 1000) -> RawVideo:
    return RawVideo(vid, f"标题{vid}", "美食", 30.0, likes, 1)


def _comments(vid: str, spec: list[tuple]) -> list[RawComment]:
    return [RawComment(cid, pid, vid, text, likes, i + 1) for i, (cid, pid, text, likes) in enumerate(spec)]


def test_each_rule_counts_what_it_removed():
    train = BuildConfig(val_fraction=0.0, test_fraction=0.0)
    videos = [_video("v1"), _video("low", likes=5), _video("flat")]
    comments = _comments("v1", [
        ("a", None, "番茄先炒吗", 10),
        ("b", "a", "@小胖 鸡蛋先炒哈哈哈哈", 5),
        ("c", "b", "好的[赞]", 3),
        ("d", "a", "没人点赞", 0),  # below likes
        ("e", "d", "我回复了没人点赞的", 4),  # under a removed comment
        ("f", "a", "你是脑残吗", 9),  # blocked
        ("g", "a", "[赞][赞]", 9),  # empty after cleaning
        ("h", "zz", "回复一个不存在的评论", 9),  # missing parent
        ("i", None, "独立评论", 9),  # a lone root: no dialogue
    ]) + _comments("low", [("l1", None, "x", 9), ("l2", "l1", "y", 9)]) \
        + _comments("flat", [("f1", None, "只有一级评论", 9)]) \
        + _comments("ghost", [("g1", None, "没有视频", 9)])
    result = clean_and_split(videos, comments, train)
    r = result.report.removed
    assert r["videos_below_likes"] == 1 and r["comments_of_dropped_videos"] == 2
    assert r["comments_below_likes"] == 1
    assert r["comments_under_removed"] == 1
    assert r["comments_blocked"] == 1 and result.report.blocked_words == {"脑残": 1}
    assert r["comments_empty_after_cleaning"] == 1
    assert r["comments_missing_parent"] == 1
    assert r["comments_unknown_video"] == 1
    assert r["videos_only_first_level"] == 1
    assert r["single_comment_chains"] == 1
    assert result.report.modified == {"mentions_removed": 1, "repeats_merged": 1, "emoticons_moved": 1}
    assert [v["video_id"] for v in result.videos] == ["v1"]
    assert result.dialogues == [{
        "dialogue_id": "v1-c", "video_id": "v1", "split": "train",
        "context": ["番茄先炒吗", "鸡蛋先炒哈哈"], "response": "好的", "references": [],
        "emoticons": ["[赞]"], "turn_ids": ["a", "b", "c"],
    }]


def test_eval_dialogues_need_five_genuine_responses_and_keep_the_most_liked():
    evalcfg = BuildConfig(val_fraction=0.0, test_fraction=1.0)
    replies = [(f"r{i}", "q", f"回答{i}", likes) for i, likes in enumerate([5, 50, 7, 50, 1, 30])]
    comments = _comments("v1", [("q", None, "这是哪里", 10), *replies,
                                ("p", None, "好看", 10), ("p1", "p", "是的", 3), ("p2", "p", "对", 3)])
    result = clean_and_split([_video("v1")], comments, evalcfg)
    assert result.report.removed["eval_contexts_too_few_responses"] == 1  # 'p' has 2 replies
    (d,) = result.dialogues
    # likes 50, 50 (file order breaks the tie), 30, 7, 5; the 1-like reply is the sixth
    assert d["references"] == ["回答1", "回答3", "回答5", "回答2", "回答0"]
    assert d["response"] == "回答1" and d["context"] == ["这是哪里"] and d["split"] == "test"

    # four replies only: the test video has no eval dialogue and moves to train
    result = clean_and_split([_video("v1")], comments[:5], evalcfg)
    assert result.report.removed["eval_videos_moved_to_train"] == 1
    assert {d["split"] for d in result.dialogues} == {"train"} and len(result.dialogues) == 4


def test_cycle_in_parent_ids_is_an_error():
    comments = _comments("v1", [("a", "b", "甲", 3), ("b", "a", "乙", 3)])
    with pytest.raises(DatasetFormatError, match=r"<comments>:1: field 'parent_id': .*cycle"):
        clean_and_split([_video("v1")], comments, BuildConfig())


# ---------------------------------------------------------------------------- raw input errors


def _write(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln, ensure_ascii=False)) + "\n"
                            for ln in lines), encoding="utf-8")
    return path


def test_raw_comment_errors_name_file_line_field(tmp_path):
    good = {"comment_id": "c1", "parent_id": None, "video_id": "v1", "text": "好", "likes": 1}
    p = _write(tmp_path / "comments.jsonl", [good, "{not json"])
    with pytest.raises(DatasetFormatError, match=r"comments.jsonl:2: not valid JSON"):
        read_raw_comments(p)
    p = _write(tmp_path / "comments.jsonl", [good, {k: v for k, v in good.items() if k != "text"} | {"comment_id": "c2"}])
    with pytest.raises(DatasetFormatError, match=r"comments.jsonl:2: field 'text': missing required field"):
        read_raw_comments(p)
    p = _write(tmp_path / "comments.jsonl", [{**good, "likes": "many"}])
    with pytest.raises(DatasetFormatError, match=r"comments.jsonl:1: field 'likes': expected a non-negative "
                                                 r"integer \(value 'many'\)"):
        read_raw_comments(p)
    p = _write(tmp_path / "comments.jsonl", [good, good])
    with pytest.raises(DatasetFormatError, match=r":2: field 'comment_id': duplicate comment_id \(first on line 1\)"):
        read_raw_comments(p)
    p = _write(tmp_path / "comments.jsonl", [{**good, "comment_id": 17, "parent_id": 3}])
    assert read_raw_comments(p)[0].comment_id == "17"  # integer ids from crawls are accepted


def test_raw_video_errors(tmp_path):
    p = _write(tmp_path / "videos.jsonl", [{"video_id": "v1", "title": "t", "topic": "美食",
                                            "duration": -3, "likes": 1}])
    with pytest.raises(DatasetFormatError, match=r"videos.jsonl:1: field 'duration'.*\(value -3\)"):
        read_raw_videos(p)


def test_build_config_from_json_rejects_unknown_and_mistyped():
    with pytest.raises(DatasetFormatError, match=r"cfg.json: field 'video_min_like': unknown build option"):
        BuildConfig.from_json({"video_min_like": 3}, path="cfg.json")
    with pytest.raises(DatasetFormatError, match=r"field 'comment_min_likes': expected int"):
        BuildConfig.from_json({"comment_min_likes": "3"})
    cfg = BuildConfig.from_json({"val_fraction": 0, "blocklist": ["坏词"]}, test_fraction=0.5)
    assert cfg.val_fraction == 0 and cfg.blocklist == ("坏词",) and cfg.test_fraction == 0.5


# ---------------------------------------------------------------------------- titles


@pytest.mark.parametrize("title, expected", [
    ("十分钟搞定番茄炒蛋#美食 #家常菜", "十分钟搞定番茄炒蛋 美食 家常菜"),
    ("#美食#家常菜 今天吃什么", "美食 家常菜 今天吃什么"),
    ("#美食 #家常菜#", "美食 家常菜"),
    ("#美食，真好吃", "美食，真好吃"),
    ("##双井号 # 单个井号", "双井号 单个井号"),
    ("@抖音小助手 第一次去西藏#旅行", "第一次去西藏 旅行"),
    ("@小王#美食", "美食"),  # a mention ends at "#"
    ("#美食@小王 真好吃", "美食 真好吃"),
    ("笑死哈哈哈哈[捂脸] 我家猫#萌宠😂#搞笑", "笑死哈哈我家猫 萌宠 搞笑"),
    ("挑战吃完10个大肉包#大胃王 666", "挑战吃完10个大肉包 大胃王 666"),
    ("46000人看过 #vlog日常", "46000人看过 vlog日常"),
    ("C#入门", "C 入门"),  # documented: every "#" starts a hashtag
    ("吉他弹唱《晴天》，前奏一响就破防", "吉他弹唱《晴天》，前奏一响就破防"),
    ("", ""),
    ("#", ""),
])
def test_clean_title(title, expected):
    assert clean_title(title) == expected


def test_clean_title_leaves_the_sample_titles_alone():
    titles = [json.loads(line)["title"] for line in
              (sample_raw_dir() / "videos.jsonl").read_text(encoding="utf-8").splitlines()]
    assert titles and [clean_title(t) for t in titles] == titles


@given(st.lists(st.sampled_from(["哈", "笑死", "好", "#", "@", "@小王", " ", "12", "ab", "[赞]", "😂", "，", "\n"]),
                max_size=15))
@settings(max_examples=300)
def test_clean_title_output_is_tidy(tokens):
    out = clean_title("".join(tokens))
    assert "#" not in out and "[赞]" not in out and "😂" not in out
    assert out == out.strip() and "  " not in out and "\n" not in out
    assert clean_title(out) == out
