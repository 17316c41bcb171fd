"""The bf16 greedy-identity criterion of the GPU end-to-end suite (tests/cpu_sglang/greedy_match.py)
accepts exactly the flips a near-tie explains, and fails everything else."""

import pytest

from cpu_sglang.greedy_match import Reference, bf16_ulp, compare, first_divergence


def test_bf16_ulp():
    assert bf16_ulp(1.0) == 2 ** -7
    assert bf16_ulp(1.99) == 2 ** -7
    assert bf16_ulp(-12.0) == 2 ** -4  # [8, 16): 2^3 * 2^-7
    assert bf16_ulp(0.3) == 2 ** -9
    assert bf16_ulp(0.0) > 0


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2, 3], [1, 2]) == 2


def _ref(ids, at, top):
    """Plain output ``ids`` with the top list ``top`` at position ``at`` (elsewhere a
    clear winner)."""
    rows = [[(-0.1, t), (-5.0, 999)] for t in ids]
    rows[at] = top
    return Reference(ids, rows)


SCALE = 12.0  # largest |logit|: ulp 2^-4, so the default 8-ulp limit is 0.5


def scale(i, pos):
    return SCALE


def test_identical_outputs_pass_exact_and_tolerant():
    refs = [Reference([1, 2, 3]), Reference([4, 5])]
    for exact in (True, False):
        report = compare(refs, [[1, 2, 3], [4, 5]], exact=exact, logit_scale=scale)
        assert report.problems() == [] and report.full_matches == 2


def test_exact_fails_on_any_difference():
    report = compare([Reference([1, 2, 3])], [[1, 2, 4]], exact=True, min_full_match=0)
    assert report.problems() and "exact" in report.problems()[0]


def test_near_tie_flip_to_runner_up_passes():
    ref = _ref([1, 2, 3, 4], 2, [(-0.70, 3), (-0.75, 7)])  # gap 0.05 < 0.5
    refs = [ref, Reference([9, 9, 9, 9])]
    report = compare(refs, [[1, 2, 7, 8], [9, 9, 9, 9]], exact=False, logit_scale=scale)
    assert report.problems() == [], report.summary()
    assert report.divergences[0].position == 2 and report.divergences[0].runner_up == 7


def test_exact_tie_listed_in_either_order_passes():
    ref = _ref([1, 2, 3], 1, [(-0.69, 6), (-0.69, 2)])  # plain took 2, listed second
    report = compare([ref, Reference([5])], [[1, 6, 0], [5]], exact=False, logit_scale=scale)
    assert report.problems() == [], report.summary()


def test_three_way_near_tie_passes_with_the_third_choice():
    # top-1 3, runner-up 7, third 5, all within 0.08 < 0.5: any of them may win in bf16
    ref = _ref([1, 2, 3, 4], 2, [(-1.05, 3), (-1.10, 7), (-1.13, 5), (-4.0, 8)])
    report = compare([ref], [[1, 2, 5, 0]], exact=False, logit_scale=scale, min_full_match=0)
    assert report.problems() == [], report.summary()
    d = report.divergences[0]
    assert d.runner_up == 7 and d.gap == pytest.approx(0.08)


@pytest.mark.parametrize("got, top, why", [
    ([1, 2, 7, 8], [(-0.1, 3), (-2.0, 7)], "gap too large"),  # gap 1.9 > 0.5
    ([1, 2, 5, 8], [(-0.70, 3), (-0.75, 7)], "not among"),  # 5 is not in the top 2
    ([1, 2, 5, 8], [(-0.70, 3), (-0.75, 7), (-1.4, 5)], "gap too large"),  # third, 0.7 off
    ([1, 2, 3, 4, 5], [(-0.1, 3), (-5.0, 9)], "ended"),  # longer output
])
def test_unexplained_divergence_fails(got, top, why):
    ref = _ref([1, 2, 3, 4], 2, top)
    report = compare([ref], [got], exact=False, logit_scale=scale, min_full_match=0)
    assert len(report.problems()) == 1 and why in report.problems()[0]


def test_limit_scales_with_logit_magnitude():
    ref = _ref([1, 2, 3], 1, [(-0.6, 2), (-0.8, 4)])  # gap 0.2
    got = [[1, 4, 0]]
    assert compare([ref], got, exact=False, logit_scale=lambda i, p: 12.0,
                   min_full_match=0).problems() == []  # limit 0.5
    assert compare([ref], got, exact=False, logit_scale=lambda i, p: 3.0,
                   min_full_match=0).problems()  # limit 8 * 2^-6 = 0.125


def test_too_few_full_matches_fails_even_when_each_flip_is_explained():
    ref = _ref([1, 2, 3], 0, [(-0.70, 1), (-0.72, 7)])
    report = compare([ref] * 4, [[7, 0, 0]] * 3 + [[1, 2, 3]], exact=False,
                     logit_scale=scale, min_full_match=0.5)
    assert report.problems() == ["only 1/4 prompts match fully (need 50%)"]
