"""Tests for nerkit.predict and `nerkit predict`: tag runs to entities with exact character spans."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from nerkit.alignment import load_tokenizer
from nerkit.cli import build_app
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.predict import Entity, Predictor, tags_to_spans
from nerkit.text import split_words
from nerkit.train import train

HINGLISH = "tushar se 2 misal mangwao, jaldi!"
DEVANAGARI = "तुषार से 2 मिसल, मंगवाओ!"
EMOJI = "pizza ❤️ bhejo\u200b jaldi"  # U+FE0F and U+200B get no subword from the tokenizer


class _Scripted(torch.nn.Module):
    """A stand-in model: B-FOOD at the first real token, then ``rest`` everywhere."""

    def __init__(self, rest: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(id2label={0: "O", 1: "B-FOOD", 2: "I-FOOD"})
        self.rest = rest

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 3)
        logits[..., self.rest] = 1.0
        logits[:, 1, :] = torch.tensor([0.0, 2.0, 0.0])
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, small_data_dir, tmp_path_factory):
    """A tiny model trained one epoch with entity-heavy weights (so it predicts some entities)."""
    out = tmp_path_factory.mktemp("predict") / "model"
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=1,
                      batch_size=16, learning_rate=1e-3, num_threads=1, weight_strategy="seed",
                      o_weight=0.5, entity_boost=3.0)
    train(cfg, output_dir=out)
    return out


def test_tags_to_spans():
    # B/I runs merge; a stray I- starts an entity; B after B and a type change split entities.
    assert tags_to_spans(["B-STORE", "I-STORE", "O", "I-FOOD"]) == [("STORE", 0, 2), ("FOOD", 3, 4)]
    assert tags_to_spans(["B-FOOD", "B-FOOD", "I-FOOD", "I-LOC", "O"]) == [
        ("FOOD", 0, 1), ("FOOD", 1, 3), ("LOC", 3, 4)]
    assert tags_to_spans(["I-QTY", "I-QTY"]) == [("QTY", 0, 2)]
    assert tags_to_spans(["O", "O"]) == [] and tags_to_spans([]) == []


@pytest.mark.parametrize("text", [HINGLISH, DEVANAGARI, EMOJI])
def test_every_word_entity_spans_index_the_input(tokenizer, text):
    # With B everywhere each word with a subword is one entity, and text[start:end] is its text.
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, device="cpu").predict([text])
    for e in ents:
        assert text[e.start:e.end] == e.text and e.label == "FOOD"
    words = [w for w in split_words(text) if w[0] not in ("\ufe0f", "\u200b")]
    assert [(e.text, e.start, e.end) for e in ents] == words


@pytest.mark.parametrize("text", [HINGLISH, DEVANAGARI, EMOJI, "  padded  text  "])
def test_multiword_entity_spans_first_to_last_word(tokenizer, text):
    # B then I everywhere gives one entity from the first word's start to the last word's end.
    (ents,) = Predictor(_Scripted(rest=2), tokenizer, device="cpu").predict([text])
    assert len(ents) == 1
    assert ents[0].text == text.strip() == text[ents[0].start:ents[0].end]
    assert 0 < ents[0].score <= 1


def test_split_spaces_keeps_a_pre_split_datas_words_whole(tokenizer):
    # A model trained on CoNLL-style words ('3.5', 'AT&T') got them back in pieces, as
    # predict split off their punctuation. With B everywhere each word is one entity.
    text = "order 3.5 kg from AT&T\u200b "
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, device="cpu", split="spaces").predict([text])
    assert [(e.text, e.start, e.end) for e in ents] == [
        ("order", 0, 5), ("3.5", 6, 9), ("kg", 10, 12), ("from", 13, 17), ("AT&T\u200b", 18, 23)]
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, device="cpu").predict([text])
    assert "3" in [e.text for e in ents]  # the default splits text as the readers do
    with pytest.raises(ValueError, match=r"split is 'tokens', but must be one of \['text', 'spaces'\]"):
        Predictor(_Scripted(rest=1), tokenizer, device="cpu", split="tokens")


def test_a_long_text_is_tagged_in_windows_and_no_word_is_lost(tokenizer):
    # Room for 4 subwords per window, 8 words: every word still gets a prediction (B then
    # I everywhere reads as one entity over the whole text), and with B everywhere each
    # word is its own entity, in order.
    text = "a b c d e f g h"
    (ents,) = Predictor(_Scripted(rest=2), tokenizer, max_length=6, device="cpu").predict([text])
    assert [(e.text, e.start, e.end) for e in ents] == [(text, 0, len(text))]
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, max_length=6, device="cpu").predict([text])
    assert [e.text for e in ents] == list("abcdefgh")


def test_window_fits_the_models_positions(model_dir):
    # The tiny model has 128 positions (its tokenizer allows 512): a 300-word text is
    # tagged in 128-subword windows instead of failing on the position embeddings.
    predictor = Predictor.from_dir(model_dir, device="cpu")
    assert predictor.max_length == 128
    text = " ".join(["pizza"] * 300)
    (ents,) = predictor.predict([text])
    assert all(text[e.start:e.end] == e.text for e in ents)


def test_batches_keep_order(tokenizer):
    # Predicting in small batches returns one entity list per text, in order.
    texts = [HINGLISH, DEVANAGARI, "", EMOJI]
    out = Predictor(_Scripted(rest=1), tokenizer, device="cpu").predict(texts, batch_size=3)
    assert [len(ents) for ents in out] == [len(split_words(HINGLISH)), len(split_words(DEVANAGARI)), 0, 4]


def test_trained_model_dir_spans_are_exact(model_dir):
    # A saved model directory loads; whatever it predicts indexes the input exactly.
    predictor = Predictor.from_dir(model_dir, device="cpu")
    texts = [HINGLISH, DEVANAGARI, EMOJI, "inayat se 2 pizza aur 1 coke, extra cheese ke saath"]
    out = predictor.predict(texts)
    assert sum(len(ents) for ents in out) > 0
    for text, ents in zip(texts, out):
        assert all(isinstance(e, Entity) and text[e.start:e.end] == e.text for e in ents)


def test_from_dir_rejects_non_model_dir(tmp_path):
    # A directory without config.json is a ValueError that names it.
    with pytest.raises(ValueError, match="not a model directory"):
        Predictor.from_dir(tmp_path)


def test_cli_predict_text(model_dir):
    # `nerkit predict --model DIR TEXT` prints the sentence and exits 0.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu",
                                              "tushar se 2 misal mangwao"])
    assert result.exit_code == 0, result.output
    assert "tushar se 2 misal mangwao" in result.stdout


def test_cli_predict_file_json(model_dir, tmp_path):
    # --file: every line is a sentence (a blank one has no entities), so --json output
    # lines up with the input line for line; CRLF endings and a U+2028 inside a line are not
    # line breaks of their own.
    lines = ["tushar se 2 misal mangwao", "", DEVANAGARI + "\u2028ok", EMOJI]
    path = tmp_path / "in.txt"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu",
                                              "--file", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.split("\n") if line]  # U+2028 is inside a row
    assert [r["text"] for r in rows] == lines
    for row in rows:
        for e in row["entities"]:
            assert row["text"][e["start"]:e["end"]] == e["text"]
            assert set(e) == {"text", "label", "start", "end", "score"}


def test_cli_predict_reads_stdin_and_prints_text_not_markup(model_dir):
    # --file - reads standard input; a sentence with [brackets] is printed as it is.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu", "--file", "-"],
                                input="buy [red]rice [/] now\n")
    assert result.exit_code == 0, result.output
    assert "buy [red]rice [/] now" in result.stdout


def test_cli_predict_names_the_line_that_is_not_utf8(model_dir, tmp_path):
    # A latin-1 byte on line 2: the error names the file and line, and how to fix it.
    path = tmp_path / "in.txt"
    path.write_bytes("pizza mangwao\ncaf\xe9 se chai\n".encode("latin-1"))
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--file", str(path)])
    assert isinstance(result.exception, ValueError)
    assert f"{path}:2: not UTF-8 text" in str(result.exception) and "iconv" in str(result.exception)
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--file", "-"],
                                input=b"ok\n\xff\n")
    assert "standard input:2: not UTF-8 text" in str(result.exception)


@pytest.mark.parametrize("device, needle", [("gpu", "must be auto, cpu, cuda or cuda:N"),
                                            ("cuda:7", "usable CUDA device")])
def test_bad_device_is_refused_before_loading(model_dir, device, needle):
    with pytest.raises(ValueError, match=needle):
        Predictor.from_dir(model_dir, device=device)


def test_incomplete_or_label_less_models_are_refused(model_dir, tmp_path):
    import shutil

    # No tokenizer files: refused, instead of an empty tokenizer that makes every word [UNK].
    broken = tmp_path / "no-tokenizer"
    shutil.copytree(model_dir, broken)
    for f in broken.glob("tokenizer*"):
        f.unlink()
    for f in ("vocab.txt", "special_tokens_map.json"):
        (broken / f).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="has no tokenizer"):
        Predictor.from_dir(broken)
    # A damaged weights file: one clear error naming the directory.
    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="could not load the model .*damaged.* pull it again"):
        Predictor.from_dir(damaged)
    # LABEL_n labels (a base model's head): no entity names to read.
    model = _Scripted(rest=1)
    model.config = SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ValueError, match="no entity names"):
        Predictor(model, None, max_length=8, device="cpu")
    # BIOES labels read as IO would make "S-FOOD" a type of its own: refused by name.
    model.config = SimpleNamespace(id2label={0: "O", 1: "B-FOOD", 2: "I-FOOD", 3: "E-FOOD", 4: "S-FOOD"})
    with pytest.raises(ValueError, match=r"labels \['E-FOOD', 'S-FOOD'\] of a BIOES/BILOU scheme"):
        Predictor(model, None, max_length=8, device="cpu")
    # An id missing from a hand-edited config: a ValueError naming the ids, not a KeyError.
    model.config = SimpleNamespace(id2label={0: "O", 1: "B-FOOD", 3: "I-FOOD"})
    with pytest.raises(ValueError, match=r"has ids \[0, 1, 3\], but they must be 0..2 \(missing \[2\]\)"):
        Predictor(model, None, max_length=8, device="cpu")
    model.config = SimpleNamespace(id2label={0: "O", 1: "E-MAIL", 2: "PHONE"})  # IO types, not BIOES
    assert Predictor(model, None, max_length=8, device="cpu").labels == ["O", "E-MAIL", "PHONE"]


def test_io_labels_and_o_anywhere_in_the_label_list(tokenizer):
    # IO labels ('FOOD', no prefix) with 'O' last: a run of one type is one entity (the
    # scripted model says LOC at the first word, FOOD after).
    model = _Scripted(rest=0)
    model.config = SimpleNamespace(id2label={0: "FOOD", 1: "LOC", 2: "O"})
    (ents,) = Predictor(model, tokenizer, max_length=16, device="cpu").predict(["inayat se pizza"])
    assert [(e.label, e.text) for e in ents] == [("LOC", "inayat"), ("FOOD", "se pizza")]


def test_cli_predict_without_input_is_an_error(model_dir):
    # No sentences and no file is a ValueError saying how to give them.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir)])
    assert isinstance(result.exception, ValueError)
    assert "no sentences given" in str(result.exception)


def test_a_name_that_is_neither_a_directory_nor_on_the_hub_is_one_line(tmp_path, monkeypatch):
    # The hub's error ran over two lines and never said the local path did not exist.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        Predictor.from_dir("nosuch-model")
    assert "\n" not in str(info.value) and "(no local directory 'nosuch-model' either)" in str(info.value)


def test_cli_prints_the_sentence_exactly_as_given(model_dir):
    # The printed spans index the sentence, so it must be shown as given: rich turned
    # ":pizza:" into an emoji, a tab into spaces, and wrapped lines over 80 columns.
    text = "order :pizza: se\t2 misal pav " + "aur ek garlic bread " * 5
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu", text])
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[0] == text


def test_an_empty_file_is_no_sentence_and_no_error(model_dir, tmp_path):
    # `cat empty | nerkit predict --file - --json` in a pipeline: zero lines in, zero out.
    (tmp_path / "empty.txt").write_bytes(b"\xef\xbb\xbf")  # a BOM alone
    for args, stdin in ((["--file", str(tmp_path / "empty.txt")], None), (["--file", "-"], "")):
        result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu", "--json",
                                                  *args], input=stdin)
        assert result.exit_code == 0 and result.stdout == "", result.output


def test_a_directory_given_as_the_file_is_named_so(model_dir, tmp_path):
    # --file DIR said "no such file", though it exists.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--file", str(tmp_path)])
    # (The console entry point prints a ValueError as "error: …" with exit status 2.)
    assert isinstance(result.exception, ValueError)
    assert str(result.exception).startswith(f"{tmp_path} is a directory; give a text file")


def test_long_documents_run_a_bounded_number_of_windows_per_pass(tokenizer, monkeypatch):
    # Every window of a text went through one forward pass, so memory grew with the text.
    # The passes now hold at most WINDOWS_PER_PASS windows, with the same entities.
    import nerkit.predict

    class Counting(_Scripted):
        sizes: list = []

        def forward(self, input_ids, attention_mask):
            Counting.sizes.append(len(input_ids))
            return super().forward(input_ids, attention_mask)

    text = " ".join(f"w{i}" for i in range(120))
    predictor = Predictor(Counting(rest=1), tokenizer, max_length=8, device="cpu")
    whole = predictor.predict([text])
    assert max(Counting.sizes) > 3
    monkeypatch.setattr(nerkit.predict, "WINDOWS_PER_PASS", 3)
    Counting.sizes = []
    assert predictor.predict([text]) == whole
    assert max(Counting.sizes) == 3 and len(Counting.sizes) > 3


def test_a_local_model_with_pytorch_bin_weights_loads(model_dir, tmp_path):
    # A model saved elsewhere with pytorch_model.bin (no safetensors) was refused as
    # "damaged"; it loads, and predicts as the safetensors copy does.
    import shutil

    from transformers import AutoModelForTokenClassification

    copy = tmp_path / "bin"
    shutil.copytree(model_dir, copy)
    (copy / "model.safetensors").unlink()
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    torch.save(model.state_dict(), copy / "pytorch_model.bin")
    text = ["tushar se 2 misal mangwao"]
    assert Predictor.from_dir(copy, device="cpu").predict(text) == Predictor.from_dir(model_dir, device="cpu").predict(text)


def test_a_file_given_as_the_model_names_its_directory(model_dir):
    # `--model m/config.json` went to the hub loader, and the user read an unpickling error.
    with pytest.raises(ValueError, match=rf"config.json is a file; give the model's directory \({model_dir}"):
        Predictor.from_dir(model_dir / "config.json", device="cpu")


def test_nerkits_own_model_names_and_missing_paths_are_named_not_sent_to_the_hub(tmp_path):
    # `-m bundled-minilm` went to the hub ("couldn't connect to huggingface.co ... check the
    # network", after ~27 s of retries online), and `-m ./nosuch` became the hub name "nosuch".
    with pytest.raises(ValueError, match=r"has labels \['LABEL_0', 'LABEL_1'\].*no entity names"):
        Predictor.from_dir("bundled-minilm", device="cpu")  # found, and refused as a base model
    missing = CliRunner().invoke(build_app(), ["predict", "-m", "./nosuch", "x"])
    assert isinstance(missing.exception, ValueError)  # the CLI's entry point prints it, exit 2
    assert str(missing.exception).startswith("the model './nosuch' does not exist")
