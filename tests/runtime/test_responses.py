"""The response counter every service uses, checked against counting the answers directly."""

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from secretstore.runtime.secretstore import responses as rs
from secretstore.runtime.secretstore.responses import Outcome


@st.composite
def rounds(draw):
    n = draw(st.integers(1, 12))
    threshold = draw(st.integers(0, n - 1))
    order = draw(st.permutations(range(n)))
    answered = draw(st.integers(0, n))
    answers = [(index, draw(st.sampled_from([b"a", b"b", b"c"]))) for index in order[:answered]]
    return n, threshold, answers


@given(rounds())
def test_outcome_matches_direct_counting(case):
    n, threshold, answers = case
    state = rs.new_state(0)
    seen: Counter = Counter()
    for step, (index, answer) in enumerate(answers, start=1):
        assert not rs.has_responded(state, index)
        outcome, value = rs.insert(state, index, answer, threshold, n)
        assert rs.has_responded(state, index) and rs.responded_count(state) == step
        seen[answer] += 1
        best, support = seen.most_common(1)[0]
        still_possible = support + (n - step) >= threshold + 1
        if support >= threshold + 1:
            assert outcome is Outcome.CONFIRMED and seen[value] >= threshold + 1
            return  # a service stops at the first decision
        if not still_possible:
            assert outcome is Outcome.IMPOSSIBLE and value is None
            return
        assert outcome is Outcome.PENDING and value is None


@given(rounds())
def test_a_set_change_discards_collected_answers(case):
    n, threshold, answers = case
    state = rs.new_state(3)
    for index, answer in answers[:1]:
        rs.insert(state, index, answer, threshold, n)
    assert not rs.refresh(state, 3)
    assert rs.refresh(state, 4)
    assert state == rs.new_state(4)
    assert not any(rs.has_responded(state, i) for i in range(n))


def test_all_must_agree_when_threshold_is_n_minus_one():
    state = rs.new_state(0)
    assert rs.insert(state, 0, b"x", 2, 3)[0] is Outcome.PENDING
    assert rs.insert(state, 1, b"y", 2, 3)[0] is Outcome.IMPOSSIBLE
