"""Interactive widgets, one module per notebook: ``lookup`` (01), ``heatmap`` (02), ``imdb`` (03),
``finetune`` (04), ``bert`` (05), ``tokenization`` (06), ``gpt`` (07), ``generation`` (08), ``scaling`` (09);
``quiz`` (any notebook's concept quiz); ``live`` (what they all share).

Import the module a notebook needs (``from helpers.widgets.lookup import attention_explorer``): this
package imports none of them, so notebook 01 never loads notebook 04's transformers.
"""
