"""Comparison baselines of the TikTalk paper behind fusion's ChatModel interface.

Importing this package registers every baseline with :func:`fusion.interface.register_model`:

==============  ==============================  =========================================
name            class                           paper row
==============  ==============================  =========================================
dialogpt        :class:`DialoGPTChat`           DialoGPT (GPT2-chitchat, Chinese)
causal-lm       :class:`CausalLMChat`           ChatGLM-6B fine-tuned (any local causal LM)
livebot         :class:`LivebotChat`            Livebot
blip2-img       :class:`Blip2ImgChat`           BLIP-2_Img (one random frame)
blip2-video     :class:`Blip2VideoChat`         BLIP-2_Video (frames averaged)
==============  ==============================  =========================================
"""

from baselines.dialogpt import DialoGPTChat, DialoGPTConfig, DialoGPTOutput

__all__ = ["DialoGPTChat", "DialoGPTConfig", "DialoGPTOutput"]
