"""The Python functions the notebooks' cells call, misused as a student editing a cell would: each
case was a silent wrong result or an error from deep inside torch that did not name the argument (a
probe of the public API); now each says what was wrong and what to do."""

import math
import re

import numpy as np
import pytest
import torch

from helpers import attention as att
from helpers import env, layers, text
from helpers.bert.count import count_parameters, head_parameters
from helpers.bert.model import BertClassifier, BertConfig, BertModel
from helpers.config import ConfigError
from helpers.corpora import synthetic_text
from helpers.finetune.data import Task, collate_rows
from helpers.gpt import GPT, GPTConfig, GPTRunConfig, train
from helpers.gpt.attention import causal_softmax
from helpers.gpt.data import build_corpus
from helpers.gpt.runs import future_leak, sample, sentence_losses
from helpers.tokenization import bpe
from helpers.tokenization.mlm import mask_tokens, whole_word_choice
from helpers.training.loop import Diverged

TINY_RUN = dict(layers=1, heads=2, embd=8, block_size=8, batch_size=4, evals=2, eval_batches=1)
TEXT = "the cat sat on the mat.\nthe dog ran.\n" * 30


def test_a_list_of_lines_is_refused_where_one_text_belongs():
    """Each line became one "character": 685 of them, and a model trained on that without a word."""
    lines = TEXT.splitlines()
    with pytest.raises(
        TypeError, match=r"one string, not a list of 60 strings.*'\\n'.join\(lines\)"
    ):
        train(lines, GPTRunConfig(iters=2, **TINY_RUN), "cpu", progress=False)
    with pytest.raises(ValueError, match="dev_fraction must be between 0 and 1"):
        build_corpus(TEXT, "char", dev_fraction=1.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: text.tokenize("a great movie", progress=False),  # 13 one-character documents
        lambda: bpe.word_counts("the cat"),  # Counter({'t': 2, 'h': 1, ...})
        lambda: bpe.learn_bpe("the cat sat", 3),  # []
    ],
)
def test_one_string_is_refused_where_a_list_of_texts_belongs(call):
    with pytest.raises(TypeError, match=r"a list of strings, not one string: wrap it as \[text\]"):
        call()


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("num_hidden_layer", "num_hidden_layers"),
        ("num_layers", "num_hidden_layers"),
        ("num_heads", "num_attention_heads"),
    ],
)
def test_a_misspelt_bert_field_is_named_not_dropped(typo, meant):
    """count_parameters counted a 12-layer BERT for num_hidden_layer=24 (bert-base's default kept)."""
    with pytest.raises(ConfigError, match=f"no field '{typo}'; did you mean '{meant}'"):
        count_parameters({"hidden_size": 1024, typo: 24, "intermediate_size": 4096})


def test_hugging_face_fields_that_look_like_ours_still_load():
    import transformers

    fields = transformers.BertConfig().to_dict()
    fields.update(position_embedding_type="absolute", output_attentions=False)
    assert BertConfig.of(fields).hidden_size == 768


def test_a_model_name_where_a_config_belongs_points_at_from_pretrained():
    with pytest.raises(TypeError, match=r"BertModel.from_pretrained\(name\)"):
        BertModel("bert-base-uncased")
    with pytest.raises(TypeError, match=r"GPT\(run_cfg.model_config\(len\(vocab\)\)\)"):
        GPT(GPTRunConfig(iters=1, **TINY_RUN))


def test_a_classifier_needs_two_classes_or_more():
    bert = BertModel(dict(vocab_size=20, hidden_size=8, num_attention_heads=2, intermediate_size=16,
                          num_hidden_layers=1))  # fmt: skip
    with pytest.raises(ValueError, match="num_labels must be an int >= 2"):
        BertClassifier(bert, 0)
    with pytest.raises(TypeError, match="wraps a BertModel, not BertConfig"):
        BertClassifier(BertConfig(), 2)
    with pytest.raises(ValueError, match="num_labels must be at least 1, not -2"):
        head_parameters(768, -2)  # it said -1538


@pytest.mark.parametrize("lr", [50.0, 1e6])
def test_a_diverged_gpt_run_is_stopped_not_reported(lr):
    """At lr 50 the report held a dev loss of 190,772 nats per token; at 1e6, NaN; both were tabled."""
    with pytest.raises(
        Diverged, match=f"training diverged.*GPTRunConfig.lr {re.escape(f'{lr:g}')}"
    ):
        train(TEXT, GPTRunConfig(iters=6, lr=lr, **TINY_RUN), "cpu", progress=False)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (dict(warmup=2.0), r"GPTRunConfig.warmup is a fraction of the steps in \[0, 1\)"),
        (dict(weight_decay=-1.0), "GPTRunConfig.weight_decay must be >= 0"),
    ],
)
def test_a_run_setting_is_refused_when_made_and_named_as_written(setting, message):
    """train failed later, naming TrainConfig, a class the student never made."""
    with pytest.raises(ConfigError, match=message):
        GPTRunConfig(iters=2, **setting)


def test_another_corpus_vocabulary_is_refused_by_sample_and_sentence_losses():
    run = train(TEXT, GPTRunConfig(iters=2, **TINY_RUN), "cpu", progress=False)
    other = build_corpus(TEXT + "xyz", "char").vocab  # 3 more characters
    with pytest.raises(
        ValueError, match="the vocabulary has .* tokens but the model was built for"
    ):
        sample(run.model, other, "the", 5)
    with pytest.raises(ValueError, match="pass the vocabulary it was trained with"):
        sentence_losses(run.model, other, ["the cat"])
    ids = torch.tensor([run.vocab.encode("the cat sat")])
    for position in (0, 100, -1):  # 100 and -1 read as "no leak", 0 was torch's error
        with pytest.raises(ValueError, match="position must be between 1 and 10"):
            future_leak(run.model, ids, position)


def test_causal_softmax_refuses_a_vector_instead_of_broadcasting_it():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, S\) with S >= T.*not \(5,\)"):
        causal_softmax(torch.randn(5))  # it returned a (5, 5) matrix


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: layers.MultiHeadAttention(8, -2), "num_heads must be a positive int, not -2"),
        (lambda: layers.MultiHeadAttention(8, 0), "num_heads must be a positive int, not 0"),
        (lambda: layers.MultiHeadAttention(8, 2.0), "num_heads must be a positive int, not 2.0"),
        (lambda: layers.MultiHeadAttention("8", 2), "embed_dim must be a positive int, not '8'"),
        (lambda: layers.MultiHeadAttention(8, 2, dropout=1.5), r"dropout .* in \[0, 1\)"),
        (lambda: layers.FeedForward(8, hidden_dim=0), "hidden_dim must be a positive int, not 0"),
        (lambda: layers.LayerNorm(8, eps=-1.0), "eps must be > 0"),  # its output was all NaN
        (
            lambda: layers.split_heads(torch.randn(2, 5, 8), 3),
            "d=8 is not divisible by num_heads=3",
        ),
    ],
)
def test_impossible_layer_sizes_are_refused_when_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_numpy_mask_is_called_what_it_is():
    """It was "mask has dtype bool; use a boolean mask": it was one, but a numpy array."""
    mha = layers.MultiHeadAttention(8, 2)
    with pytest.raises(
        TypeError, match=r"mask must be a torch tensor, not ndarray: torch.as_tensor"
    ):
        mha(torch.randn(2, 5, 8), np.ones((2, 5), bool))


@pytest.mark.parametrize(
    "call",
    [
        lambda k: att.score_margin(torch.ones(3), k, 0, 4),  # 0.657 for a key that does not exist
        lambda k: att.averaging_query(k, -1, 2, 5.0),  # wrapped round to the last key
        lambda k: att.averaging_query(k, 1, 4, 5.0),
        lambda k: att.selection_query(k, 4, 5.0),
    ],
)
def test_key_indices_count_from_zero_and_must_exist(call):
    keys = torch.eye(4, 3)
    with pytest.raises(ValueError, match="a key's index, counted from 0: 0 to 3 for 4 keys"):
        call(keys)


def test_a_bad_profile_argument_is_named_as_the_argument():
    with pytest.raises(ValueError, match=r"profile='quik' is not a profile.*leave it out"):
        env.resolve_profile(torch.device("cpu"), "quik")
    with pytest.raises(ValueError, match="seed must be an int from 0 to 2\\*\\*32 - 1"):
        env.seed_everything(-1)


def test_fine_tuning_batches_name_a_missing_column_or_label():
    rows = [{"sentence": "a fine film", "label": 1}, {"sentence": "dull", "label": 0}]
    task = Task("sentence", "label")

    class Never:  # the checks come before any tokenising
        def __call__(self, *args, **kwargs):
            raise AssertionError("tokenised")

    with pytest.raises(ValueError, match=r"label 1 is not in the label map \{0: 0\}"):
        collate_rows(rows, Never(), task, {0: 0})  # a bare KeyError: 1
    with pytest.raises(ValueError, match=r"no column 'text' \(they have 'sentence', 'label'\)"):
        collate_rows(rows, Never(), Task("text", "label"), {0: 0, 1: 1})
    with pytest.raises(ValueError, match="no rows to collate"):
        collate_rows([], Never(), task, {0: 0, 1: 1})


def test_masking_refuses_float_ids_and_a_short_continuation_table():
    ids = torch.randint(5, 50, (2, 8))
    special = torch.zeros(2, 8, dtype=torch.bool)
    with pytest.raises(
        ValueError, match="input_ids are token ids, an integer tensor, not torch.float32"
    ):
        mask_tokens(ids.float(), special, 4, 60)  # it returned float "ids"
    with pytest.raises(ValueError, match="continues has 10 entries but input_ids holds id"):
        whole_word_choice(ids, special, torch.zeros(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="prob is the chance of choosing a token"):
        whole_word_choice(ids, special, torch.zeros(60, dtype=torch.bool), prob=2)


def test_train_takes_a_device_name():
    run = train(synthetic_text(3000), GPTRunConfig(iters=2, **TINY_RUN), "cpu", progress=False)
    assert run.report["iters"] == 2


def test_train_with_minutes_runs_after_a_cell_turned_gradients_off():
    """Notebook 07's gpt.train under an earlier `torch.set_grad_enabled(False)`: its --minutes probe
    and then fit stopped at torch's "element 0 of tensors does not require grad"."""
    torch.set_grad_enabled(False)
    try:
        run = train(
            synthetic_text(3000), GPTRunConfig(minutes=0.02, **TINY_RUN), "cpu", progress=False
        )
    finally:
        torch.set_grad_enabled(True)
    assert run.report["iters"] >= 1 and math.isfinite(run.report["dev_loss"])


@pytest.mark.parametrize("knob", ["temperature", "top_k", "top_p"])
def test_a_sampling_knob_typed_as_text_is_named(knob):
    from helpers.training.generate import generate

    model = GPT(GPTConfig(vocab_size=5, block_size=4, layers=1, heads=1, embd=8))
    with pytest.raises(TypeError, match=f"{knob} must be a number, not the string '0.5'"):
        generate(model, torch.zeros(1, 1, dtype=torch.long), 2, 4, **{knob: "0.5"})
