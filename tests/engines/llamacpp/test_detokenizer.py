"""Detokenizer: UTF-8 hold-back and stop strings, on scripted byte pieces."""

from tether.engines.llamacpp.detokenizer import Detokenizer

PIECES = {
    1: b"Hello",
    2: b" wor",
    3: b"ld",
    4: "日本".encode()[:4],  # "日" plus the first byte of "本"
    5: "日本".encode()[4:],  # the rest of "本"
    6: "😀".encode()[:2],
    7: "😀".encode()[2:],
    8: b"\n\nUser",
    9: b":",
    10: b"END",
}


def run(tokens: list[int], stop: tuple[str, ...] = ()) -> tuple[list[str], Detokenizer]:
    detok = Detokenizer(PIECES.__getitem__, stop)
    parts = []
    for t in tokens:
        parts.append(detok.add_token(t))
        if detok.stopped:
            return parts, detok
    parts.append(detok.finalize())
    return parts, detok


def test_plain_text_is_released_at_once() -> None:
    parts, _ = run([1, 2, 3])
    assert parts == ["Hello", " wor", "ld", ""]


def test_japanese_split_across_tokens_is_never_emitted_partially() -> None:
    parts, _ = run([4, 5])
    assert parts[:2] == ["日", "本"]
    assert all("\ufffd" not in p for p in parts)


def test_emoji_split_in_the_middle_is_held_until_complete() -> None:
    parts, _ = run([6, 7])
    assert parts[:2] == ["", "😀"]


def test_stop_string_inside_one_token_cuts_the_text() -> None:
    parts, detok = run([1, 2, 3], stop=("or",))
    assert "".join(parts) == "Hello w"
    assert detok.stopped


def test_stop_string_spanning_tokens_never_leaks_partially() -> None:
    parts, detok = run([1, 8, 9, 3], stop=("User:",))
    assert parts == ["Hello", "\n\n", ""]
    assert detok.stopped


def test_possible_stop_prefix_is_released_when_it_does_not_complete() -> None:
    parts, detok = run([1, 8, 3], stop=("User:",))
    assert parts == ["Hello", "\n\n", "Userld", ""]
    assert not detok.stopped


def test_tokens_after_a_stop_add_nothing() -> None:
    detok = Detokenizer(PIECES.__getitem__, ("or",))
    assert detok.add_token(2) == " w"
    assert detok.stopped
    assert detok.add_token(1) == ""
    assert detok.finalize() == ""


def test_held_text_is_flushed_by_finalize() -> None:
    parts, _ = run([1, 10], stop=("ENDING",))
    assert parts == ["Hello", "", "END"]


def test_dangling_partial_character_becomes_replacement_char_at_the_end() -> None:
    parts, _ = run([6])
    assert parts == ["", "\ufffd"]
