"""Tests of the streaming template miner (inline samples only, no shared data)."""

from __future__ import annotations

import doctest
import importlib
import json

import pytest

import opsloop.detect.templates as templates_pkg
from opsloop.detect.templates import (
    TemplateMiner,
    extract_params,
    grouping_accuracy,
    mask,
    masking,
    miner,
    parsing_accuracy,
    scoring,
    tokenize,
)

# the package re-exports the function ``tokenize``, which shadows the submodule attribute
tokenize_mod = importlib.import_module("opsloop.detect.templates.tokenize")


@pytest.mark.parametrize("module", [templates_pkg, masking, miner, scoring, tokenize_mod])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("took 12 ms", "took <*> ms"),
        ("took -3.5 s", "took <*> s"),
        ("from 10.0.0.1:8080 ok", "from <*> ok"),
        ("mac 5c:50:15:36:bc:03 up", "mac <*> up"),
        ("addr fe80::1ff:fe23:4567:890a done", "addr <*> done"),
        ("addr 0x1f3a and deadbeef99", "addr <*> and <*>"),
        ("block blk_-6952295868487656571 gone", "block blk_<*> gone"),
        ("node node-246 rack R02-M1", "node node-<*> rack R<*>-M<*>"),
        ("at Fri Jun 17 07:07:00 2005 end", "at <*> end"),
        ("plain words only", "plain words only"),
    ],
)
def test_masking(raw, expected):
    assert mask(raw) == expected


def test_tokenize_collapses_variable_lists_and_caps_length():
    tokens, seps = tokenize("delete blk_<*> blk_<*> blk_<*> now")
    assert tokens == ["delete", "blk_<*>", "now"]
    assert len(seps) == 2
    tokens, _ = tokenize(" ".join(f"w{i}" for i in range(500)), max_tokens=10)
    assert len(tokens) == 10
    assert tokens[-1] == "<*>"


def test_numbers_group_and_template_text():
    m = TemplateMiner()
    a = m.learn_one("Received block blk_1 of size 67108864 from /10.250.19.102")
    b = m.learn_one("Received block blk_-99 of size 3 from /10.0.0.7")
    assert a.template_id == b.template_id
    assert b.template == "Received block blk_<*> of size <*> from /<*>"
    assert b.params == ["-99", "3", "10.0.0.7"]


def test_word_variable_merges_after_enough_distinct_values_and_ids_stay_stable():
    m = TemplateMiner()
    first = m.learn_one("Invalid user webmaster from 173.234.31.186").template_id
    second = m.learn_one("Invalid user admin from 52.80.34.196").template_id
    assert first != second  # two values are not yet evidence of a variable
    third = m.learn_one("Invalid user support from 195.154.37.122")
    assert third.template == "Invalid user <*> from <*>"
    # the oldest id survives; the merged id is an alias that resolves to it
    assert third.template_id == first
    assert m.resolve(second) == first
    assert m.aliases == {second: first}
    assert m.learn_one("Invalid user oracle from 1.2.3.4").template_id == first
    assert len(m) == 1


def test_enumerations_and_first_words_do_not_over_merge():
    m = TemplateMiner()
    ids = {
        m.learn_one(f"{verb} password for root from 10.0.0.{i} port 22 ssh2").template_id
        for i, verb in enumerate(["Accepted", "Failed", "Rejected", "Postponed"] * 3)
    }
    assert len(ids) == 4  # the first word is the event, never a variable
    on = m.learn_one("Link Up on en0").template_id
    off = m.learn_one("Link Up on awdl0").template_id
    assert on != off  # two alternatives only


def test_shaped_values_merge_with_less_evidence():
    m = TemplateMiner()
    a = m.learn_one("Deleting file /mnt/data/current/subdir5/blk_1").template_id
    b = m.learn_one("Deleting file /mnt/data/blk_2").template_id
    assert m.resolve(a) == m.resolve(b)  # paths: two values suffice
    c = m.learn_one("failure rhost=<*> user=x").template_id
    d = m.learn_one("failure rhost=example.org user=x").template_id
    assert m.resolve(c) == m.resolve(d)
    assert m.template(c) == "failure rhost=<*> user=x"


def test_two_word_variables_in_one_message():
    m = TemplateMiner()
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    hosts = ["alpha", "beta", "gamma"]
    ids = [
        m.learn_one(f"session for user {u} on host {h} opened").template_id
        for u in users
        for h in hosts
    ]
    resolved = {m.resolve(i) for i in ids}
    assert len(resolved) == 1
    assert m.template(ids[0]) == "session for user <*> on host <*> opened"


def test_variable_length_lists_group_together():
    m = TemplateMiner()
    a = m.learn_one("ask 10.0.0.1:50010 to delete blk_1").template_id
    b = m.learn_one("ask 10.0.0.2:50010 to delete blk_1 blk_2 blk_3 blk_-4").template_id
    assert a == b


def test_to_dict_from_dict_round_trip_keeps_ids_and_behaviour():
    lines = [f"Invalid user {u} from 10.0.0.{i}" for i, u in enumerate(["a1x", "bob", "cat"])]
    lines += ["Accepted password for root", "Failed password for root", "took 5 ms"]
    m = TemplateMiner()
    ids = [m.learn_one(line).template_id for line in lines]
    state = json.loads(json.dumps(m.to_dict()))  # JSON-able, no pickle
    restored = TemplateMiner.from_dict(state)
    assert restored.templates == m.templates
    assert [restored.resolve(i) for i in ids] == [m.resolve(i) for i in ids]
    more = ["Invalid user zed from ::1", "Failed password for bob", "took 7 ms", "new event"]
    assert [restored.learn_one(x).template_id for x in more] == [
        m.learn_one(x).template_id for x in more
    ]
    assert restored.to_dict() == m.to_dict()


def test_from_dict_rejects_unknown_version():
    with pytest.raises(ValueError, match="version"):
        TemplateMiner.from_dict({"version": 999})


def test_match_is_read_only():
    m = TemplateMiner()
    m.learn_one("disk sda1 full at 99%")
    before = m.to_dict()
    hit = m.match("disk sda7 full at 12%")
    assert hit is not None
    assert hit.template == "disk sda<*> full at <*>%"
    assert m.match("completely different message") is None
    assert m.to_dict() == before


def test_bad_input_empty_huge_and_replacement_chars():
    m = TemplateMiner()
    assert m.learn_one("").template == ""
    assert m.learn_one("   ").template_id == m.learn_one("").template_id
    huge = " ".join(f"tok{i}x" for i in range(50_000))
    res = m.learn_one(huge)
    assert len(res.template.split()) <= 128
    assert m.learn_one("caf\ufffd broken \x00 bytes").template == "caf\ufffd broken \x00 bytes"


def test_memory_bounded_by_templates_not_lines():
    m = TemplateMiner(cache_size=50)
    for i in range(2_000):
        m.learn_one(f"request {i} took {i * 7 % 1000} ms from 10.0.{i % 256}.{i % 7}")
        m.learn_one(f"worker {i % 3} heartbeat seq={i}")
    assert len(m) == 2
    assert len(m._cache) <= 50
    state = m.to_dict()
    assert len(json.dumps(state)) < 5_000


def test_invalid_config():
    with pytest.raises(ValueError):
        TemplateMiner(min_distinct=1)


def test_extract_params_no_match_and_no_variables():
    assert extract_params("a <*> b", "x y z") == []
    assert extract_params("constant", "constant") == []


def test_scoring_functions():
    truth = ["A", "A", "B", "C", "C"]
    assert grouping_accuracy(truth, [1, 1, 2, 3, 3]) == 1.0
    assert grouping_accuracy(truth, [1, 1, 1, 3, 3]) == pytest.approx(2 / 5)
    assert grouping_accuracy(truth, [1, 2, 3, 4, 5]) == pytest.approx(1 / 5)
    assert parsing_accuracy(["x <*>", "y"], ["x <*>", "y"]) == 1.0
    assert grouping_accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        grouping_accuracy(["a"], [])
    with pytest.raises(ValueError):
        parsing_accuracy(["a"], [])
