"""Maria, the UniLM fusion model (:mod:`fusion.modeling_maria`). Importing the package registers
its saved format with transformers' Auto classes (``model_type`` ``tiktalk-maria``;
:mod:`tiktalk.models.auto`), so ``AutoModel.from_pretrained(RUN/model)`` opens a saved Maria."""

from tiktalk.models.auto import register_auto_classes

register_auto_classes("maria")
