"""The run layer: what a run or an experiment does, as plain Python beneath the commands.

A researcher runs an experiment from Python with these functions; the ``tiktalk`` commands
parse their flags, call them and print what they return. Nothing here parses argv or calls a
command.

- :mod:`tiktalk.runs.training`: :class:`RunOptions`, train config and ``--resume`` planning,
  :func:`load_examples`, :func:`train_run`, :func:`load_run_model`, :func:`generate_responses`.
- :mod:`tiktalk.runs.budget`: :func:`knowledge_budget` of a model config, without building the model.
- :mod:`tiktalk.runs.pipeline`: the data, KG, index and knowledge steps (import, convert,
  index build, annotate, gold knowledge) as the commands run them.
- :mod:`tiktalk.runs.experiments`: the Table 3 rows (:func:`run_table3`, :func:`run_rows`).
- :mod:`tiktalk.runs.kdconv`: the KdConv suite (:func:`run_kdconv_suite`).
- :mod:`tiktalk.runs.analysis`: the paper's dataset analyses (Table 2, 5, 6, label sheets; :func:`run_analysis_all`).
- :mod:`tiktalk.runs.demo`: the ``tiktalk demo`` pipeline (:func:`run_demo`).
- :mod:`tiktalk.runs.reports`: the markdown those write.
"""
