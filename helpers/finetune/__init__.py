"""Notebook 04, fine-tuning BERT-family models: ``data`` (SST-2, BoolQ, batches), ``models`` (pretrained
encoders with a new head), ``experiments`` (sanity check, batch-size finder, search, comparison),
``cli`` (``python -m helpers.finetune``). Training is ``helpers.training.fit``, as everywhere."""
