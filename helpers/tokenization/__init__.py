"""Tokenization from subwords to masked-LM inputs (notebook 06).

- ``bpe``: byte-pair encoding written out (count pairs, merge the most frequent, repeat), equal to the
  ``tokenizers`` library's BPE trainer;
- ``train``: WordPiece and BPE tokenizers trained with ``tokenizers`` on a corpus, as ``transformers``
  tokenizers, and their fertility (tokens per word);
- ``mlm``: BERT's masking (15% chosen; of those 80% [MASK], 10% random, 10% unchanged) and its labels.

``train`` imports ``tokenizers`` and ``transformers``; import it by name (``from helpers.tokenization
import train``) where it is needed, so ``bpe`` and ``mlm`` stay light.
"""
