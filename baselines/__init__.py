"""Comparison baselines of the TikTalk paper behind the platform's ChatModel interface (tiktalk.models).

Each is listed by name in :data:`tiktalk.models.base.MODELS`:

==============  ==============================  =========================================
name            class                           paper row
==============  ==============================  =========================================
dialogpt        :class:`DialoGPTChat`           DialoGPT (GPT2-chitchat, Chinese)
causal-lm       :class:`CausalLMChat`           ChatGLM-6B fine-tuned (any local causal LM)
livebot         :class:`LivebotChat`            Livebot
blip2-img       :class:`Blip2ImgChat`           BLIP-2_Img (one random frame)
blip2-video     :class:`Blip2VideoChat`         BLIP-2_Video (frames averaged)
==============  ==============================  =========================================

Every model: ``from_preset("tiny", **overrides)``, ``collate(examples, train)``,
``forward(**batch)`` -> output dataclass with ``loss``/``loss_lm``/``logits``,
``generate(examples, **overrides)`` -> list[str], ``save_pretrained(dir)`` /
``from_pretrained(dir)`` (the platform's saved format: tiktalk_model.json + model.safetensors
+ tokenizer files; :mod:`tiktalk.models.saving`). Importing the package registers each saved
format with transformers' Auto classes (``tiktalk-dialogpt``, ...; :mod:`tiktalk.models.auto`);
``causal-lm`` saves its LM in Hugging Face form, which ``AutoModelForCausalLM`` opens as it is.
"""

from baselines.blip2 import Blip2ChatConfig, Blip2ChatOutput, Blip2ImgChat, Blip2VideoChat
from baselines.causal_lm import CausalLMChat, CausalLMConfig, CausalLMOutput
from baselines.dialogpt import DialoGPTChat, DialoGPTConfig, DialoGPTOutput
from baselines.livebot import LivebotChat, LivebotConfig, LivebotOutput
from tiktalk.models.auto import register_auto_classes

for _name in ("dialogpt", "livebot", "blip2-img", "blip2-video"):
    register_auto_classes(_name)

__all__ = [
    "Blip2ChatConfig", "Blip2ChatOutput", "Blip2ImgChat", "Blip2VideoChat",
    "CausalLMChat", "CausalLMConfig", "CausalLMOutput",
    "DialoGPTChat", "DialoGPTConfig", "DialoGPTOutput",
    "LivebotChat", "LivebotConfig", "LivebotOutput",
]
