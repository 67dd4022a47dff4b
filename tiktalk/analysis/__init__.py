"""The paper's dataset analyses, on any corpus in the dataset schema (ground floor).

- :mod:`~tiktalk.analysis.stats`: Table 2, the data division (:func:`data_division`).
- :mod:`~tiktalk.analysis.topics`: Table 5, videos per topic by encoder similarity
  (:func:`assign_topics`; the encoder comes in as a function).
- :mod:`~tiktalk.analysis.interests`: Table 6, where in a video the responses look, with a
  local Chinese-CLIP (:class:`ChineseClipScorer`, :func:`score_interests`).
- :mod:`~tiktalk.analysis.labels`: Figure 2(b) context sources and appendix A.3 knowledge
  types as annotation sheets (:func:`build_label_sheet`, :func:`score_label_sheets`).
- :mod:`~tiktalk.analysis.paper_numbers`: the paper's published numbers for all of them.

The run layer (:mod:`tiktalk.runs.analysis`) reads datasets, picks encoders and writes files;
the ``tiktalk analyze`` and ``tiktalk label`` commands call it.
"""
