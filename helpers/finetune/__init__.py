"""Notebook 04, fine-tuning BERT-family models: ``data`` (SST-2, BoolQ, batches), ``splits`` (dev and
test held out of phrase-level data without leaks), ``models`` (pretrained encoders with a new head),
``experiments`` (training step, scores, sanity check, batch-size probe, seeds, search, comparison),
``cli`` (``python -m helpers.finetune``), ``twin`` (``python -m helpers.finetune compare``:
notebook 06's pretrained model against its random twin), ``t5`` (T5 as a text-to-text classifier,
notebook 09) and ``proxy`` (``python -m helpers.finetune.proxy``: sentence-level
stand-ins for GLUE SST-2's validation sentences). Training is ``helpers.training.fit``, as everywhere."""
