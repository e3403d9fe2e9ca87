"""Tests for text data: SimCSE's file formats, STS-B train sentences, and rows gathered by index arrays."""

import numpy as np
import pytest

from prosampler_jax.data import text


def test_sentence_files_skip_empty_lines_and_nli_needs_its_header(tmp_path):
  path = tmp_path / "wiki1m_for_simcse.txt"
  path.write_text("First sentence.\n\n   \nSecond one, longer.\n")
  assert text.read_sentences(str(path)) == ["First sentence.", "Second one, longer."]
  nli = tmp_path / "nli_for_simcse.csv"
  nli.write_text('sent0,sent1,hard_neg\n"A man, tall.",A man.,A woman.\nx,,z\n')
  assert text.read_nli(str(nli)) == (["A man, tall."], ["A man."], ["A woman."])  # incomplete row dropped
  nli.write_text("premise,hypothesis\na,b\n")
  with pytest.raises(ValueError, match="lacks \\['sent0', 'sent1', 'hard_neg'\\]"):
    text.read_nli(str(nli))


def test_training_text_that_is_not_utf8_names_the_file_line_and_byte(tmp_path):
  path = tmp_path / "wiki1m_for_simcse.txt"
  path.write_bytes(b"First.\nSecond.\nCaf\xe9 au lait.\n")  # Latin-1, not UTF-8
  with pytest.raises(ValueError, match=r"wiki1m_for_simcse.txt:3: not UTF-8 text .*0xe9 at offset 18"):
    text.read_sentences(str(path))
  nli = tmp_path / "nli_for_simcse.csv"
  nli.write_bytes(b"sent0,sent1,hard_neg\na,b,c\n\xff,b,c\n")
  with pytest.raises(ValueError, match=r"nli_for_simcse.csv:3: not UTF-8 text"):
    text.read_nli(str(nli))


def test_load_text_names_the_missing_file_and_how_to_get_it(tmp_path):
  with pytest.raises(text.TextDataNotFoundError, match="wiki1m_for_simcse.txt not found.*princeton-nlp"):
    text.load_text("wiki1m", str(tmp_path))
  with pytest.raises(ValueError, match="config.dataset='books'"):
    text.load_text("books", str(tmp_path))


def test_stsb_train_has_10566_unique_sentences():
  sentences = text.stsb_train_sentences(None)
  assert len(sentences) == len(set(sentences)) == 10566


def test_rows_are_gathered_in_batch_order_per_process_from_start_batch():
  arrays = {"a/input_ids": np.arange(40, dtype=np.int32).reshape(10, 4),
            "a/attention_mask": np.ones((10, 4), np.int32)}
  batches = np.array([[3, 1, 4, 0], [5, 9, 2, 6], [7, 8, 1, 3]], np.int32)
  elements = list(text.rows_dataset(arrays, batches, process_index=1, process_count=2,
                                    start_batch=1).as_numpy_iterator())
  assert [e["index"].tolist() for e in elements] == [[2, 6], [1, 3]]
  np.testing.assert_array_equal(elements[0]["a/input_ids"], arrays["a/input_ids"][[2, 6]])
  with pytest.raises(ValueError, match=r"allowed: \[0, 9\]"):
    text.rows_dataset(arrays, batches + 5)
