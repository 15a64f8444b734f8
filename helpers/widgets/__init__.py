"""Interactive widgets, one module per notebook: ``lookup`` (01), ``heatmap`` (02), ``imdb`` (03),
``finetune`` (04); ``quiz`` (any notebook's concept quiz); ``live`` (what they all share).

Import the module a notebook needs (``from helpers.widgets.lookup import attention_explorer``): this
package imports none of them, so notebook 01 never loads notebook 04's transformers.
"""
