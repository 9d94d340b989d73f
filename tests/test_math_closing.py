"""Tables for the pieces the math verifier's fallback and prose answers are built from:
``verifiers.math_closing`` (the closing sentence), ``verifiers.math_quantities`` (ratios, times,
dates, durations) and ``verifiers.math_extract.answer_statements``."""

from __future__ import annotations

from fractions import Fraction

import pytest

from verifiers.math_closing import closing_sentence, read_sentence, repetition_loop, retraction
from verifiers.math_extract import answer_statements
from verifiers.math_quantities import ClockTime, Date, Duration, Ratio, parse_quantity, quantity_equivalent


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("So the total is 14.", "14"),
        ("She sells 9 at $2 each, making 9 * 2 = 18 dollars.", "18"),
        ("Therefore, Wendi needs 20 cups of feed in the final meal of the day.", "20"),
        ("Her birthday is on March 15th.", "March 15th"),
        ("The train arrives at 3:45 PM.", "3:45 PM"),
        ("The trip takes 3 h 20 min.", "3 h 20 min"),
        ("The ratio is 6:4, which simplifies to 3:2.", "3:2"),
        ("The smallest possible value is 14.", "14"),
        ("Hmm, could it be 14?", None),
        ("It is not 14.", None),
        ("14 is wrong.", None),
        ("Maybe 14.", None),
        ("If the total were 14, the average would be 7.", None),
        ("Let me compute 7 * 2 = 14, then subtract", None),
        ("Let's see if 14 works.", None),
        ("Let's compute: 6 packs of 7, which gives 6 × 7 = 42 markers.", "42"),
        ("We compute the overlap, which is", None),
        ("The candidates are 12 and 14.", None),
        ("It could be 14.", None),
        ("Since she didn't eat any, she has 14 apples.", "14"),  # the negation is in another clause
        ("7 + 7 = 14, which is not the answer we want.", None),
        ("Either way, the total is 14.", "14"),
        ("It is either 12 or 14.", None),
        ("So Janet makes $18 every day if she sells all her eggs.", "18"),
        ("If she had sold more, she would make 20.", None),
        ("There are 14 options in total.", "14"),
        ("Options: (a) 10 (b) 11 (c) 12", None),
        ("So there are 17 multiples of 6 below 105.", "17"),  # 105 is a condition, 17 the result
        ("There are 17 positive multiples of 6 less than 105.", "17"),
        ("She has 3 and then 4 more, 7 in all.", "7"),
        ("The original price of the jacket was $80, before the 25% discount.", "80"),
        ("It is not 40 but 45.", "45"),
        ("So the library has 45 members instead of 40.", "45"),
        ("So the library has 45 members, not 40.", "45"),
        ("So the library does not have 45 members.", None),
    ],
)
def test_read_sentence(sentence, expected):
    answer, why = read_sentence(sentence, number_wanted=True)
    assert answer == expected
    assert answer is not None or why


def test_read_sentence_formula_and_ratio_words():
    assert read_sentence("The hypotenuse is $\\sqrt{50}$.", number_wanted=False)[0] == "\\sqrt{50}"
    assert read_sentence("The length is $2\\sqrt{2}$ or $2\\sqrt{3}$.", number_wanted=False)[0] == "2\\sqrt{2}, 2\\sqrt{3}"
    assert read_sentence("The ratio is 2 to 1.", number_wanted=True, ratio_wanted=True)[0] == "2:1"
    assert read_sentence("The ratio is 2 to 1.", number_wanted=True)[0] is None  # "4 to 6" for a number is a range


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Work.\n\nSo she has 14 marbles left.\n\nI hope this helps!", "So she has 14 marbles left."),
        ("We get 14. Anyway, let me describe the strategy.", "Anyway, let me describe the strategy."),
        ("- **Total:** 14", "Total: 14"),
        ("She must leave at 6:45 a.m. to arrive on time.", "She must leave at 6:45 a.m. to arrive on time."),
        ("There are 17 of them.\n\n```python\nprint(17)\n```", "There are 17 of them."),  # a check after the answer
        ("Let me list the candidates:\n\n| n |\n|---|\n| 14 |", None),  # the table is the content
        ("```\ncandidates = [10, 12, 14]\n```", None),
        ("| n | value |\n|---|---|\n| 3 | 14 |", None),
        ("7 * 2 = 14 " + "14 " * 20, None),
        ("", None),
    ],
)
def test_closing_sentence(text, expected):
    sentence, why = closing_sentence(text)
    assert sentence == expected
    assert sentence is not None or why


def test_repetition_loop():
    assert repetition_loop("So 9 * 2 = 18. " * 10)
    assert repetition_loop("Let me check again. 18 is right. " * 3 + "Let me check again.")
    assert not repetition_loop("The probability is 0.333333")  # repeated digits are a decimal
    assert not repetition_loop("5 + 9 = 14 marbles in all.")


@pytest.mark.parametrize(
    "tail, expected",
    [
        (" Wait, that's wrong.", "retracted"),
        (" No wait, it is 6.", "retracted"),
        (" Hmm, I forgot the last row.", "retracted"),
        (" Hmm, actually it is 6.", "reconsidered"),
        (" Actually, let me recount.", None),  # no answer restated: the statement stands
        (" Hmm, note that 36 is also divisible by 4.", None),
        (" I hope it is correct.", None),
        ("\n\nTo verify: 7 + 7 = 14.", None),
    ],
)
def test_retraction(tail, expected):
    assert retraction(tail) == expected


@pytest.mark.parametrize(
    "text, value",
    [
        ("3:2", Ratio((Fraction(3), Fraction(2)))),
        ("1 : 2 : 3", Ratio((Fraction(1), Fraction(2), Fraction(3)))),
        ("3:45 PM", ClockTime(15 * 60 + 45, True)),
        ("15:45", ClockTime(15 * 60 + 45, True)),
        ("10:30 \\text{ a.m.}", ClockTime(10 * 60 + 30, True)),
        ("4:30", ClockTime(4 * 60 + 30, False)),
        ("12 AM", ClockTime(0, True)),
        ("March 15th", Date(3, 15, None)),
        ("15 March 2024", Date(3, 15, 2024)),
        ("Tuesday, March 15, 2024", Date(3, 15, 2024)),
        ("2024-03-15", Date(3, 15, 2024)),
        ("3 \\text{ hours } 20 \\text{ minutes}", Duration(Fraction(12000), (3600, 60))),
        ("2\\frac{1}{2} hours", Duration(Fraction(9000), (3600,))),
        ("3 hours and 20 minutes", Duration(Fraction(12000), (3600, 60))),
        ("13:75", None),
        ("February 30x", None),
        ("2.5 km/h", None),
        ("12", None),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


def test_quantity_equivalence():
    three_hours_twenty = parse_quantity("3 hours 20 minutes")
    assert quantity_equivalent(parse_quantity("200 minutes"), three_hours_twenty, None)
    assert quantity_equivalent(None, three_hours_twenty, Fraction(200))  # a bare number in one of the gold's units
    assert not quantity_equivalent(parse_quantity("3.5 hours"), three_hours_twenty, None)
    assert quantity_equivalent(parse_quantity("6:4"), parse_quantity("3:2"), None)
    assert quantity_equivalent(None, parse_quantity("3:2"), Fraction(3, 2))
    assert not quantity_equivalent(parse_quantity("2:3"), parse_quantity("3:2"), None)
    assert quantity_equivalent(parse_quantity("3:45"), parse_quantity("3:45 PM"), None)  # the half of the day left open
    assert not quantity_equivalent(parse_quantity("3:45 AM"), parse_quantity("3:45 PM"), None)
    assert quantity_equivalent(parse_quantity("March 15"), parse_quantity("March 15, 2024"), None)
    assert quantity_equivalent(parse_quantity("1:30"), parse_quantity("1 hour 30 minutes"), None)  # h:mm
    assert not quantity_equivalent(parse_quantity("1:30 PM"), parse_quantity("1 hour 30 minutes"), None)
    assert parse_quantity("3 o'clock") == ClockTime(180, False)
    assert not quantity_equivalent(parse_quantity("March 15, 2023"), parse_quantity("March 15, 2024"), None)


def test_answer_statements():
    text = ("We find $a = \\boxed{3}$. If order mattered, the answer would be 6. "
            "Final Answer: The final answer is $\\boxed{7}$. The answer is not 8.")
    found = answer_statements(text)
    assert [(s.kind, s.text, s.intermediate) for s in found.items] == [("boxed", "3", True), ("boxed", "7", False)]
    assert found.silenced  # the negated phrase at the end
    cut = answer_statements("The answer is 1", truncated=True)
    assert not cut.items and cut.silenced  # "1" may be the start of "125"
    assert answer_statements("#### 72\n").items[0].text == "72"
    assert answer_statements("The answer is \\boxed{5").unclosed_box
