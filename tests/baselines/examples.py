"""A fixed batch of four DialogueExamples with random frames/audio, shared by the baseline tests."""

from __future__ import annotations

import numpy as np

from tiktalk.types import DialogueExample


def make_examples(with_response: bool = True, seed: int = 0) -> list[DialogueExample]:
    rng = np.random.default_rng(seed)

    def feats(n: int, dim: int) -> np.ndarray | None:
        return rng.normal(size=(n, dim)).astype(np.float32) if n else None

    rows = [
        (["这个视频太好笑了", "哈哈哈我也笑死了", "你看到最后了吗"], "看到了，最后那只猫绝了", 5, 4,
         "某人想要开心；猫很可爱"),
        (["求背景音乐"], "是周杰伦的晴天", 3, 0, None),
        (["这是哪里啊", "好像是杭州西湖"], "西湖真的很美", 8, 6, "西湖在杭州"),
        (["up主加油OK"], "谢谢大家支持", 0, 2, None),
    ]
    return [
        DialogueExample(
            dialogue_id=f"d{i}", context=list(context),
            response=response if with_response else None,
            references=[response] if with_response else [],
            video_id=f"v{i}", title="测试视频", frames=feats(n_frames, 2048),
            audio=feats(n_audio, 128), knowledge=knowledge,
        )
        for i, (context, response, n_frames, n_audio, knowledge) in enumerate(rows)
    ]
