"""Table-driven tests of the ``math`` verifier: (gold, completion, expected status).

Completions are written the way models write them: a chain of thought, then a final
answer in one of the usual forms. ``CASES`` is also the default data of
``bench/math_accuracy.py`` (which compares against math-verify used directly).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from verifiers import get_verifier
from verifiers.math import answers_equivalent, extract_answer, math_verifier, normalize, parse_gold, read_choice


class Case(NamedTuple):
    id: str
    category: str
    gold: object
    completion: str
    expected: str  # correct | incorrect | unverifiable


C, I, U = "correct", "incorrect", "unverifiable"

_RAW: dict[str, list[tuple[str, object, str, str]]] = {
    # ------------------------------------------------------------ where the answer is
    "extraction": [
        ("boxed-nested-frac", "\\frac{3}{4}", "We have $p = \\frac{6}{8}$, which reduces.\n\nThe probability is $\\boxed{\\frac{3}{4}}$.", C),
        ("boxed-nested-sqrt", "\\frac{\\sqrt{3}}{2}", "Using the unit circle, $\\sin 60^\\circ = \\boxed{\\frac{\\sqrt{3}}{2}}$.", C),
        ("fbox", "12", "Adding the two counts gives $5 + 7 = 12$.\n\n\\fbox{12}", C),
        ("boxed-space-before-brace", "7", "The remainder is therefore \\boxed {7}.", C),
        ("boxed-no-braces", "7", "So the remainder is $\\boxed 7$.", C),
        ("last-box-counts-same-value", "42", "First guess: $\\boxed{42}$. Let me double check: $6 \\times 7 = 42$. Final: $\\boxed{42}$", C),
        ("box-inside-display", "8", "Thus\n\\[\n\\boxed{8}\n\\]\nis the number of subsets.", C),
        ("answer-is-plain", "15", "There are 3 rows of 5 chairs, so 3 * 5 = 15 chairs.\nThe answer is 15.", C),
        ("answer-is-dollar-math", "\\frac{2}{5}", "Out of 10 marbles, 4 are red, so the chance is 4/10.\nThe answer is $\\frac{2}{5}$.", C),
        ("final-answer-minerva", "9", "Solving $x + 4 = 13$ gives $x = 9$.\nFinal Answer: The final answer is $9$. I hope it is correct.", C),
        ("final-answer-colon", "-3", "Subtracting, we get $-3$.\n\n**Final Answer:** -3", C),
        ("final-answer-heading", "64", "The volume is $4^3 = 64$.\n\n## Final Answer\n\n$64$", C),
        ("answer-colon-bold", "250", "Each box holds 25, and there are 10 boxes.\n\n**Answer: 250**", C),
        ("gsm8k-hashes", "72", "Natalia sold 48/2 = 24 clips in May.\nShe sold 48 + 24 = 72 clips altogether.\n#### 72", C),
        ("gsm8k-hashes-wrong", "72", "Natalia sold 48/2 = 24 clips in May.\nAltogether 48 + 24 = 70.\n#### 70", I),
        ("last-number-fallback", "18", "Janet has 16 eggs. She eats 3 and bakes with 4, leaving 9. She sells 9 at $2 each, making 9 * 2 = 18 dollars.", C),
        ("last-number-fallback-wrong", "18", "Janet has 16 eggs and uses 7, leaving 9, so she makes 9 * 3 = 27 dollars.", I),
        ("no-answer-at-all", "\\frac{1}{2}", "Let me think about the geometry of this problem carefully before computing anything.", I),
        ("empty-completion", "5", "", I),
        ("unclosed-final-box", "5", "We get $x = 5$, so the answer is $\\boxed{5", I),
        ("empty-box", "5", "Therefore the answer is $\\boxed{}$.", I),
        ("think-block-then-answer", "6", "<think>Maybe \\boxed{5}? No: 2 * 3 = 6.</think>\nThe product is \\boxed{6}.", C),
        ("think-block-then-wrong", "6", "<think>It is \\boxed{6}, surely.</think>\nActually I will say \\boxed{5}.", I),
        ("answer-then-because", "4", "The answer is 4, because the two roots coincide.", C),
        ("answer-phrase-then-box-wins", "10", "At first the answer is 12, but the overlap is counted twice, so we subtract 2: $\\boxed{10}$.", C),
        ("boxed-text-wrapper", "\\text{east}", "Facing north and turning right puts you facing $\\boxed{\\text{east}}$.", C),
        ("boxed-equation-in-text", "12", "The perimeter is $P = 2(2 + 4) = \\boxed{12}$ units.", C),
        ("answer-is-next-line", "27", "Multiplying the three dimensions, the answer is:\n\n$$27$$", C),
        ("fallback-with-commas", "1200", "Each month she saves 100, so in a year she saves 12 x 100 = 1,200 dollars.", C),
        ("box-with-or-in-reasoning", "5", "Since $x$ is positive or zero, the largest value is $\\boxed{5}$.", C),
        ("box-or-same-value", "\\frac{3}{8}", "The probability is $\\boxed{\\frac{3}{8}}$ or $37.5\\%$.", C),
        ("llama-final-answer", "5", "## Step 1: Add\n$2 + 3 = 5$\n\nThe final answer is: $\\boxed{5}$", C),
        ("r1-style", "5", "<think>\nLet me add: 2 + 3 = 5.\n</think>\n\n**Final Answer**\n\\[\n\\boxed{5}\n\\]", C),
        ("fallback-decimal", "2.5", "Splitting 10 liters among 4 bottles gives 10 / 4 = 2.5 liters per bottle.", C),
        ("fallback-not-for-expression-gold", "x^2", "We square the variable and get x squared, so 2 is the exponent.", I),
        ("last-formula-radical", "5\\sqrt{2}", "By Pythagoras, the hypotenuse is $\\sqrt{25 + 25} = \\sqrt{50}$.", C),
        ("last-formula-point", "(2, -1)", "Solving the system, the lines meet at $(2, -1)$.", C),
        ("last-formula-dfrac-number-gold", "0.5", "Half of the tickets win, so the probability is $\\dfrac{1}{2}$.", C),
        ("last-formula-wrong", "5\\sqrt{2}", "By Pythagoras, the hypotenuse is $\\sqrt{25 + 16} = \\sqrt{41}$.", I),
        ("answer-and-not", "12", "Checking both candidates, the answer is $12$ and not $13$.", C),
        ("fallback-unicode-minus", "-3", "Moving everything to one side, we find x = −3.", C),
        ("text-wrapped-number", "12", "She ends up with $\\boxed{\\text{12 apples}}$.", C),
        ("mathbf-number", "4", "So the number of solutions is $\\boxed{\\mathbf{4}}$.", C),
        ("answer-should-be", "12", "Adding the two cases, the answer should be 12.", C),
    ],
    # ------------------------------------------------------------ normalization
    "normalization": [
        ("thousands-comma", "1000000", "A million is $10^6$, so the count is \\boxed{1,000,000}.", C),
        ("thousands-brace-comma", "14916", "Summing the series gives $\\boxed{14{,}916}$.", C),
        ("thousands-thin-space", "10000", "The population is $\\boxed{10\\,000}$.", C),
        ("thousands-bang", "1000", "There are $\\boxed{1,\\!000}$ ways.", C),
        ("thousands-space", "2500000", "The budget is \\boxed{2 500 000}.", C),
        ("gold-with-thousands", "1{,}234", "Adding gives \\boxed{1234}.", C),
        ("text-unit", "6", "The area is $3 \\cdot 2 = 6$, so $\\boxed{6 \\text{ cm}^2}$.", C),
        ("text-unit-wrong-number", "6", "The area is $\\boxed{9 \\text{ cm}^2}$.", I),
        ("plain-unit-word", "12", "Each of the 4 bags has 3 apples, so the answer is 12 apples.", C),
        ("mbox-unit", "45", "The speed is $\\boxed{45\\mbox{ mph}}$.", C),
        ("unit-inches", "4", "The side length is $\\boxed{4 \\text{ inches}}$.", C),
        ("gold-with-unit", "5\\text{ cm}", "The radius is \\boxed{5}.", C),
        ("degrees-circ", "60", "Each interior angle of the equilateral triangle is $\\boxed{60^\\circ}$.", C),
        ("degrees-braced-circ", "120", "The angle is $\\boxed{120^{\\circ}}$.", C),
        ("degrees-word", "30", "So the angle measures \\boxed{30 \\text{ degrees}}.", C),
        ("degrees-unicode", "45", "The answer is 45°.", C),
        ("gold-degrees", "90^\\circ", "The angle is right, \\boxed{90}.", C),
        ("currency-dollar", "18.90", "The total cost is $\\boxed{\\$18.90}$.", C),
        ("currency-plain", "\\$5", "He pays \\boxed{5} dollars.", C),
        ("currency-euro", "20", "Das kostet \\boxed{€20}.", C),
        ("currency-wrong", "18.90", "The total cost is $\\boxed{\\$18.80}$.", I),
        ("dfrac", "\\frac{7}{2}", "Hence $x = \\boxed{\\dfrac{7}{2}}$.", C),
        ("tfrac", "\\frac{7}{2}", "Hence $x = \\boxed{\\tfrac72}$.", C),
        ("frac-no-braces", "\\frac{1}{2}", "So $p = \\boxed{\\frac12}$.", C),
        ("percent-both", "25\\%", "The discount is $\\boxed{25\\%}$.", C),
        ("percent-dropped", "25\\%", "The discount is \\boxed{25}.", C),
        ("percent-as-decimal", "25\\%", "The discount rate is \\boxed{0.25}.", C),
        ("percent-pred-decimal-gold", "0.25", "As a percentage, \\boxed{25\\%}.", C),
        ("percent-word", "40", "The answer is 40 percent.", C),
        ("percent-not-scaled-for-bare-gold", "25", "The rate is \\boxed{0.25}.", I),
        ("e-notation", "1500", "The mass is $\\boxed{1.5 \\times 10^{3}}$ grams.", C),
        ("e-notation-e", "0.00012", "In scientific notation \\boxed{1.2e-4}.", C),
        ("e-notation-wrong", "1500", "The mass is $\\boxed{1.5 \\times 10^{4}}$.", I),
        ("gold-e-notation", "3 \\times 10^8", "The speed of light is about \\boxed{300000000} m/s.", C),
        ("unicode-minus", "-5", "The result is \\boxed{−5}.", C),
        ("unicode-sqrt", "2\\sqrt{3}", "The distance is 2√3.\n\nThe answer is 2√3.", C),
        ("unicode-pi", "4\\pi", "The area is \\boxed{4π}.", C),
        ("unicode-superscript", "x^2+1", "The polynomial is \\boxed{x² + 1}.", C),
        ("unicode-half", "\\frac{1}{2}", "The answer is ½.", C),
        ("unicode-times", "3 \\times 10^5", "The answer is 3×10^5.", C),
        ("unicode-root-parentheses", "2\\sqrt{3}", "The height is 2√(3), so the answer is 2√(3).", C),
        ("unicode-cube-root", "2", "The edge is ∛8 = 2, so the answer is ∛8.", C),
        ("plain-sqrt-and-ln", "\\frac{\\ln 2}{2}", "The answer is ln(2)/2", C),
        ("trig-degrees-kept", "\\frac{1}{2}", "The ratio is $\\boxed{\\sin 30^\\circ}$.", C),
        ("unicode-le-interval", "(-\\infty, 2]", "The solution set is x ≤ 2, i.e. \\boxed{(-∞, 2]}.", C),
        ("left-right", "(1, 2)", "The point is $\\boxed{\\left(1, 2\\right)}$.", C),
        ("displaystyle", "\\frac{5}{6}", "$\\boxed{\\displaystyle \\frac{5}{6}}$", C),
        ("trailing-period-in-box", "11", "The answer is \\boxed{11.}", C),
        ("leading-zero-decimal", "0.5", "The probability is \\boxed{.5}.", C),
        ("trailing-zeros-decimal", "3.5", "The mean is \\boxed{3.50}.", C),
        ("plus-sign", "5", "The answer is \\boxed{+5}.", C),
        ("phantom", "11", "Aligned in the table: $\\boxed{\\phantom{1}11}$", C),
        ("mathrm-unit", "10", "The current is $\\boxed{10\\,\\mathrm{A}}$.", C),
        ("spelled-number", "5", "So she has five apples left.\nThe answer is five.", C),
        ("langle-vector", "(1, 2, 3)", "The direction vector is $\\boxed{\\langle 1, 2, 3 \\rangle}$.", C),
        ("unit-with-slash", "2.5", "The average speed is $\\boxed{2.5\\text{ km/h}}$.", C),
        ("repeating-decimal-overline", "\\frac{1}{6}", "As a decimal, $\\boxed{0.1\\overline{6}}$.", C),
        ("python-nested-list", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "The matrix is [[1, 2], [3, 4]].\nThe answer is [[1, 2], [3, 4]]", C),
    ],
    # ------------------------------------------------------------ numbers and fractions
    "numbers": [
        ("int-exact", "204", "Counting the squares of every size gives $\\boxed{204}$.", C),
        ("int-wrong", "204", "Counting the squares of every size gives $\\boxed{202}$.", I),
        ("negative", "-12", "The minimum value is \\boxed{-12}.", C),
        ("negative-sign-lost", "-12", "The minimum value is \\boxed{12}.", I),
        ("decimal-as-fraction", "0.75", "The probability is $\\boxed{\\frac{3}{4}}$.", C),
        ("fraction-as-decimal", "\\frac{3}{4}", "The probability is \\boxed{0.75}.", C),
        ("fraction-unreduced", "\\frac{3}{4}", "The probability is $\\boxed{\\frac{6}{8}}$.", C),
        ("fraction-slash", "\\frac{3}{4}", "The probability is 3/4.", C),
        ("fraction-wrong", "\\frac{3}{4}", "The probability is $\\boxed{\\frac{4}{3}}$.", I),
        ("negative-fraction", "-\\frac{1}{2}", "The slope is $\\boxed{\\frac{-1}{2}}$.", C),
        ("mixed-number", "\\frac{7}{2}", "She needs $\\boxed{3\\frac{1}{2}}$ cups.", C),
        ("integer-as-float", "12", "The answer is \\boxed{12.0}.", C),
        ("float-gold", 0.5, "The probability is \\boxed{\\frac{1}{2}}.", C),
        ("int-gold", 42, "The answer is \\boxed{42}.", C),
        ("int-gold-wrong", 42, "The answer is \\boxed{24}.", I),
        ("repeating-decimal-close", "\\frac{1}{3}", "The probability is \\boxed{0.333333}.", C),
        ("repeating-decimal-rounded-6", "\\frac{2}{3}", "The ratio is \\boxed{0.666667}.", C),
        ("repeating-decimal-too-short", "\\frac{1}{3}", "The probability is about \\boxed{0.33}.", I),
        ("repeating-decimal-4-digits", "\\frac{2}{3}", "The ratio is \\boxed{0.6667}.", I),
        ("terminating-needs-exact", "\\frac{1}{8}", "The probability is \\boxed{0.125}.", C),
        ("terminating-rounded-wrong", "\\frac{1}{8}", "The probability is \\boxed{0.13}.", I),
        ("expression-evaluates", "64", "The answer is $\\boxed{2^6}$.", C),
        ("factorial", "120", "There are $\\boxed{5!}$ orderings.", C),
        ("binomial", "10", "The count is $\\boxed{\\binom{5}{2}}$.", C),
        ("ratio-colon", "\\frac{2}{3}", "The ratio of boys to girls is $\\boxed{2:3}$.", C),
        ("big-integer", "1267650600228229401496703205376", "So $2^{100} = \\boxed{1267650600228229401496703205376}$.", C),
        ("big-integer-power", "1267650600228229401496703205376", "The answer is $\\boxed{2^{100}}$.", C),
        ("big-integer-off-by-one", "1267650600228229401496703205376", "The answer is $\\boxed{1267650600228229401496703205377}$.", I),
        ("zero", "0", "All terms cancel, so the sum is $\\boxed{0}$.", C),
        ("log-exact", "3", "$\\log_2 8 = \\boxed{3}$", C),
        ("log-unevaluated", "3", "The answer is $\\boxed{\\log_2 8}$.", C),
    ],
    # ------------------------------------------------------------ radicals, pi, closed forms
    "radicals_pi": [
        ("radical-same", "2\\sqrt{2}", "The diagonal is $\\boxed{2\\sqrt{2}}$.", C),
        ("radical-unsimplified", "2\\sqrt{2}", "The diagonal is $\\boxed{\\sqrt{8}}$.", C),
        ("radical-rationalized", "\\frac{\\sqrt{2}}{2}", "So $\\cos 45^\\circ = \\boxed{\\frac{1}{\\sqrt{2}}}$.", C),
        ("radical-wrong", "2\\sqrt{2}", "The diagonal is $\\boxed{2\\sqrt{3}}$.", I),
        ("radical-sum", "3+2\\sqrt{2}", "Squaring, $(1+\\sqrt{2})^2 = \\boxed{2\\sqrt{2}+3}$.", C),
        ("radical-expanded-square", "3+2\\sqrt{2}", "The answer is $\\boxed{(1+\\sqrt{2})^2}$.", C),
        ("cube-root", "2\\sqrt[3]{2}", "The edge is $\\boxed{\\sqrt[3]{16}}$.", C),
        ("pi-multiple", "16\\pi", "The area is $\\pi r^2 = \\boxed{16\\pi}$.", C),
        ("pi-reordered", "\\frac{9\\pi}{2}", "The volume is $\\boxed{\\frac{9}{2}\\pi}$.", C),
        ("pi-decimal-short", "\\pi", "The ratio is approximately \\boxed{3.14}.", I),
        ("pi-decimal-long", "16\\pi", "The area is \\boxed{50.265482}.", C),
        ("pi-wrong-coefficient", "16\\pi", "The area is $\\boxed{8\\pi}$.", I),
        ("pi-with-approx", "16\\pi", "The area is $\\boxed{16\\pi \\approx 50.27}$.", C),
        ("radical-decimal-long", "\\sqrt{2}", "The length is \\boxed{1.414214}.", C),
        ("radical-decimal-short", "\\sqrt{2}", "The length is \\boxed{1.41}.", I),
        ("e-constant", "e^2", "The limit equals $\\boxed{e^{2}}$.", C),
        ("log-closed-form", "\\ln 2", "The integral is $\\boxed{\\log 2}$.", I),
        ("trig-value", "\\frac{1}{2}", "$\\sin 30^\\circ = \\boxed{\\frac{1}{2}}$", C),
        ("complex-number", "3+4i", "Multiplying out, $(2+i)^2 = \\boxed{4i+3}$.", C),
        ("complex-number-wrong", "3+4i", "The answer is $\\boxed{3-4i}$.", I),
        ("complex-unsimplified", "3+4i", "The answer is $\\boxed{(2+i)^2}$.", C),
    ],
    # ------------------------------------------------------------ expressions
    "expressions": [
        ("poly-reordered", "x^2+7x+10", "Expanding, $(x+2)(x+5) = \\boxed{x^2 + 7x + 10}$.", C),
        ("poly-factored", "x^2+7x+10", "The expression equals $\\boxed{(x+5)(x+2)}$.", C),
        ("poly-wrong", "x^2+7x+10", "Expanding, $\\boxed{x^2 + 7x + 12}$.", I),
        ("rational-expression", "\\frac{x+1}{x-1}", "Simplifying, $\\boxed{\\frac{x^2+2x+1}{x^2-1}}$.", C),
        ("different-variable", "2x+1", "The answer is $\\boxed{2t+1}$.", I),
        ("multivariable", "a^2-b^2", "So $\\boxed{(a-b)(a+b)}$.", C),
        ("trig-identity", "1", "Since $\\sin^2 x + \\cos^2 x = 1$, the answer is $\\boxed{1}$.", C),
        ("expression-with-pi", "2\\pi r", "The circumference is $\\boxed{2 \\pi r}$.", C),
        ("expression-order-of-product", "6xy", "The product is $\\boxed{6yx}$.", C),
        ("expression-power", "x^{6}", "$(x^2)^3 = \\boxed{x^6}$", C),
        ("expression-sqrt", "\\sqrt{x+1}", "The inverse is $\\boxed{\\sqrt{1+x}}$.", C),
        ("expression-sign-error", "3x-2", "The derivative is $\\boxed{3x+2}$.", I),
        ("function-assignment-pred", "3x^2-2", "The derivative is $f'(x) = \\boxed{3x^2 - 2}$.", C),
        ("expression-as-equation", "2x+3", "Thus $\\boxed{y = 2x + 3}$.", C),
        ("exponential", "2^{n+1}", "The sum is $\\boxed{2 \\cdot 2^n}$.", C),
        ("plain-text-math", "x^2+1", "The answer is x**2 + 1", C),
    ],
    # ------------------------------------------------------------ equations
    "equations": [
        ("assignment-pred-number-gold", "3", "Solving, $2x = 6$ so $\\boxed{x = 3}$.", C),
        ("number-pred-assignment-gold", "x=3", "Solving, $2x = 6$ so $\\boxed{3}$.", C),
        ("assignment-both", "x = 3", "Therefore $\\boxed{x=3}$.", C),
        ("assignment-wrong-value", "x = 3", "Therefore $\\boxed{x=4}$.", I),
        ("assignment-reversed", "x=3", "Therefore $\\boxed{3 = x}$.", C),
        ("line-equation-same", "y = 2x + 3", "The line is $\\boxed{y = 3 + 2x}$.", C),
        ("line-equation-standard-form", "y = 2x + 3", "The line is $\\boxed{2x - y + 3 = 0}$.", C),
        ("line-equation-rhs-only", "y = 2x + 3", "The equation of the line is $\\boxed{2x+3}$.", C),
        ("line-equation-wrong", "y = 2x + 3", "The line is $\\boxed{y = 2x - 3}$.", I),
        ("circle-equation", "x^2+y^2=25", "The circle is $\\boxed{x^2 + y^2 - 25 = 0}$.", C),
        ("circle-equation-scaled", "x^2+y^2=25", "So $\\boxed{2x^2 + 2y^2 = 50}$.", C),
        ("circle-equation-wrong", "x^2+y^2=25", "So $\\boxed{x^2 + y^2 = 5}$.", I),
        ("chain-equation", "5", "The total is $\\boxed{2 + 3 = 5}$.", C),
        ("contradictory-chain", "5", "The answer is $\\boxed{4 = 5}$.", I),
        ("named-quantity", "24", "So the area is $\\boxed{A = 24}$.", C),
        ("function-value", "7", "So $\\boxed{f(2) = 7}$.", C),
        ("wrong-variable-assignment", "x=3", "Therefore $\\boxed{y = 3}$.", I),
        ("k-value", "k=-2", "The constant is \\boxed{-2}.", C),
        ("assignments-gold-values-in-order", "a = 2, b = 3", "So $\\boxed{(2, 3)}$.", C),
        ("assignments-gold-values-swapped", "a = 2, b = 3", "So $\\boxed{(3, 2)}$.", I),
        ("assignments-gold-any-order", "a = 2, b = 3", "So $\\boxed{b = 3, a = 2}$.", C),
        ("same-variable-gold-any-order", "x = 2 \\text{ or } x = 3", "The roots are $\\boxed{3, 2}$.", C),
        ("exact-equals-rounded", "\\frac{\\pi}{4}", "The angle is $\\boxed{\\frac{\\pi}{4} = 0.785}$ radians.", C),
        ("rounded-only-short", "\\frac{\\pi}{4}", "The angle is $\\boxed{0.785}$ radians.", I),
    ],
    # ------------------------------------------------------------ intervals
    "intervals": [
        ("closed-same", "[0, 1]", "The range is $\\boxed{[0,1]}$.", C),
        ("half-open-same", "[0,1)", "The solution set is $\\boxed{[0, 1)}$.", C),
        ("half-open-vs-closed", "[0,1)", "The solution set is $\\boxed{[0, 1]}$.", I),
        ("open-vs-closed", "(0,1)", "The solution set is $\\boxed{[0, 1]}$.", I),
        ("infinite-right", "[2, \\infty)", "The domain is $\\boxed{[2, \\infty)}$.", C),
        ("infinite-wrong-bracket", "[2, \\infty)", "The domain is $\\boxed{(2, \\infty)}$.", I),
        ("infinite-left", "(-\\infty, 3]", "The answer is $\\boxed{(-\\infty, 3]}$.", C),
        ("inequality-pred", "(-\\infty, 3]", "So the solutions are $\\boxed{x \\le 3}$.", C),
        ("inequality-pred-strict-wrong", "(-\\infty, 3]", "So the solutions are $\\boxed{x < 3}$.", I),
        ("double-inequality", "(1, 5]", "Thus $\\boxed{1 < x \\leq 5}$.", C),
        ("double-inequality-wrong", "(1, 5]", "Thus $\\boxed{1 \\le x \\le 5}$.", I),
        ("union", "(-\\infty, -1) \\cup (2, \\infty)", "So $x$ lies in $\\boxed{(-\\infty,-1)\\cup(2,\\infty)}$.", C),
        ("union-reordered", "(-\\infty, -1) \\cup (2, \\infty)", "So $\\boxed{(2,\\infty)\\cup(-\\infty,-1)}$.", C),
        ("union-as-inequalities", "(-\\infty, -1) \\cup (2, \\infty)", "So $\\boxed{x < -1 \\text{ or } x > 2}$.", C),
        ("union-wrong-endpoint", "(-\\infty, -1) \\cup (2, \\infty)", "So $\\boxed{(-\\infty,-1]\\cup(2,\\infty)}$.", I),
        ("interval-membership", "[0, 1)", "Hence $\\boxed{x \\in [0, 1)}$.", C),
        ("all-reals", "(-\\infty, \\infty)", "The domain is $\\boxed{\\mathbb{R}}$.", C),
        ("interval-fraction-endpoints", "[\\frac{1}{2}, 3)", "So $\\boxed{[0.5, 3)}$.", C),
        ("interval-vs-single-point", "[0,1]", "The answer is $\\boxed{1}$.", I),
        ("interval-unicode-union", "(-\\infty, 0) \\cup (1, \\infty)", "The answer is (−∞, 0) ∪ (1, ∞).", C),
    ],
    # ------------------------------------------------------------ sets and lists
    "sets": [
        ("set-same-order", "\\{1, 2, 3\\}", "The solution set is $\\boxed{\\{1,2,3\\}}$.", C),
        ("set-other-order", "\\{1, 2, 3\\}", "The solution set is $\\boxed{\\{3, 1, 2\\}}$.", C),
        ("set-missing-element", "\\{1, 2, 3\\}", "The solution set is $\\boxed{\\{1, 2\\}}$.", I),
        ("set-extra-element", "\\{1, 2, 3\\}", "The solution set is $\\boxed{\\{1, 2, 3, 4\\}}$.", I),
        ("list-gold-any-order", "-2, 5", "The roots are $\\boxed{5, -2}$.", C),
        ("list-gold-set-pred", "-2, 5", "The roots form the set $\\boxed{\\{-2, 5\\}}$.", C),
        ("list-gold-or", "-2, 5", "So $\\boxed{x = -2 \\text{ or } x = 5}$.", C),
        ("list-gold-and", "-2, 5", "The roots are $x=-2$ and $x=5$, i.e. $\\boxed{-2 \\text{ and } 5}$.", C),
        ("list-gold-wrong", "-2, 5", "The roots are $\\boxed{2, -5}$.", I),
        ("list-gold-one-missing", "-2, 5", "The root is $\\boxed{5}$.", I),
        ("pm-gold", "\\pm 3", "Since $x^2 = 9$, $\\boxed{x = \\pm 3}$.", C),
        ("pm-gold-listed", "\\pm 3", "So $\\boxed{3, -3}$.", C),
        ("pm-pred-list-gold", "3, -3", "So $\\boxed{\\pm 3}$.", C),
        ("set-of-fractions", "\\{\\frac{1}{2}, 2\\}", "The solutions are $\\boxed{\\left\\{2, 0.5\\right\\}}$.", C),
        ("set-of-radicals", "1 + \\sqrt{2}, 1 - \\sqrt{2}", "By the quadratic formula $x = \\boxed{1 \\pm \\sqrt{2}}$.", C),
        ("set-of-radicals-wrong", "1 + \\sqrt{2}, 1 - \\sqrt{2}", "By the quadratic formula $x = \\boxed{-1 \\pm \\sqrt{2}}$.", I),
        ("empty-set", "\\emptyset", "No real number works, so the solution set is $\\boxed{\\varnothing}$.", C),
        ("empty-set-braces", "\\emptyset", "Hence $\\boxed{\\{\\}}$.", C),
        ("set-separate-boxes", "\\{1, 2\\}", "The solutions are $x = \\boxed{1}$ and $x = \\boxed{2}$.", C),
        ("set-separate-boxes-extra", "\\{1, 2\\}", "The solutions are $\\boxed{1}$, $\\boxed{2}$ and $\\boxed{3}$.", I),
        ("set-duplicates", "\\{1, 2\\}", "So the set is $\\boxed{\\{1, 1, 2\\}}$.", C),
    ],
    # ------------------------------------------------------------ tuples and points
    "tuples": [
        ("point-same", "(3, -4)", "The center is $\\boxed{(3, -4)}$.", C),
        ("point-swapped", "(3, -4)", "The center is $\\boxed{(-4, 3)}$.", I),
        ("point-bare", "(3, -4)", "So the center is $\\boxed{3, -4}$.", C),
        ("point-assignments", "(3, -4)", "So $\\boxed{x = 3, y = -4}$.", C),
        ("point-fraction-coords", "(\\frac{1}{2}, 3)", "The vertex is $\\boxed{\\left(0.5, 3\\right)}$.", C),
        ("point-radical-coords", "(\\sqrt{2}, \\pi)", "So $\\boxed{(\\sqrt{2}, \\pi)}$.", C),
        ("triple", "(1, 2, 3)", "The ordered triple is $\\boxed{(1,2,3)}$.", C),
        ("triple-permuted", "(1, 2, 3)", "The ordered triple is $\\boxed{(3,2,1)}$.", I),
        ("tuple-as-set-rejected", "(1, 2)", "The pair is $\\boxed{\\{1, 2\\}}$.", I),
        ("polar", "(3, \\frac{\\pi}{2})", "In polar coordinates, $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.", C),
        ("tuple-wrong-length", "(1, 2, 3)", "The triple is $\\boxed{(1, 2)}$.", I),
        ("open-interval-gold-inequality", "(1,2)", "Thus $\\boxed{1 < x < 2}$.", C),
    ],
    # ------------------------------------------------------------ matrices
    "matrices": [
        ("matrix-same", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "$$\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}$$", C),
        ("matrix-bmatrix", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "The product is $\\boxed{\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}}$.", C),
        ("matrix-entry-wrong", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "$\\boxed{\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}}$", I),
        ("matrix-transposed", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "$\\boxed{\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}}$", I),
        ("matrix-fraction-entries", "\\begin{pmatrix}\\frac{1}{2}&0\\\\0&2\\end{pmatrix}", "The inverse is $\\boxed{\\begin{pmatrix}0.5&0\\\\0&2\\end{pmatrix}}$.", C),
        ("column-vector", "\\begin{pmatrix}1\\\\-2\\\\3\\end{pmatrix}", "So the vector is $\\boxed{\\begin{pmatrix} 1 \\\\ -2 \\\\ 3 \\end{pmatrix}}$.", C),
        ("column-vector-as-tuple", "\\begin{pmatrix}1\\\\-2\\\\3\\end{pmatrix}", "So the vector is $\\boxed{(1, -2, 3)}$.", C),
        ("column-vector-wrong", "\\begin{pmatrix}1\\\\-2\\\\3\\end{pmatrix}", "So the vector is $\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}}$.", I),
        ("matrix-left-right-array", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", "$\\boxed{\\left(\\begin{array}{cc}1&0\\\\0&1\\end{array}\\right)}$", C),
        ("matrix-wrong-shape", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "$\\boxed{\\begin{pmatrix}1&2&3&4\\end{pmatrix}}$", I),
        ("matrix-symbolic", "\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}", "$\\boxed{\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}}$", C),
    ],
    # ------------------------------------------------------------ multiple choice
    "choice": [
        ("letter-boxed", "C", "Only option C satisfies both conditions. $\\boxed{C}$", C),
        ("letter-parens", "C", "Checking each option, the answer is $\\boxed{(C)}$.", C),
        ("letter-text-parens", "C", "The correct choice is $\\boxed{\\text{(C)}}$.", C),
        ("letter-with-value", "C", "Therefore the answer is C) 42.", C),
        ("letter-with-value-parens", "C", "The answer is (C) $\\frac{1}{2}$.", C),
        ("letter-textbf", "C", "Final answer: $\\boxed{\\textbf{(C)}}$", C),
        ("letter-option-word", "C", "So the correct option is C.", C),
        ("letter-wrong", "C", "The answer is $\\boxed{B}$.", I),
        ("letter-lowercase", "C", "The answer is $\\boxed{c}$.", C),
        ("gold-in-parens", "(B)", "The answer is $\\boxed{B}$.", C),
        ("gold-text-parens", "\\text{(D)}", "Hence the answer is D.", C),
        ("letter-on-last-line", "A", "Comparing all four options, only the first one has a positive discriminant.\n\n**A**", C),
        ("letter-value-instead", "C", "The answer is $\\boxed{42}$.", I),
        ("letter-e-option", "E", "None of the first four work, so the answer is $\\boxed{E}$.", C),
        ("letters-several-gold", "\\text{A, C}", "Statements A and C hold, so the answer is $\\boxed{\\text{C, A}}$.", C),
        ("letters-several-missing-one", "\\text{A, C}", "Only A holds: $\\boxed{\\text{A}}$.", I),
        ("letters-several-extra", "A, C", "The answer is $\\boxed{A, B, C}$.", I),
        ("letter-bold-answer-line", "C", "Only the third graph has two roots.\n\n**Answer: (C)**", C),
        ("letter-then-explanation", "C", "Answer: C\n\nExplanation: A and B fail because the sign is wrong.", C),
        ("letter-option-parens", "C", "So the right choice is option (C).", C),
    ],
    # ------------------------------------------------------------ text answers
    "text": [
        ("text-boxed", "\\text{Monday}", "Counting forward 7k days, the day is $\\boxed{\\text{Monday}}$.", C),
        ("text-plain", "\\text{Monday}", "So it falls on a Monday.\nThe answer is Monday.", C),
        ("text-wrong", "\\text{Monday}", "The answer is $\\boxed{\\text{Tuesday}}$.", I),
        ("text-case", "Yes", "The answer is: yes.", C),
        ("text-no", "No", "It cannot be tiled, so the answer is no, because the colors do not balance.", C),
        ("text-no-wrong", "No", "The answer is $\\boxed{\\text{yes}}$.", I),
        ("text-odd", "\\text{odd}", "The function is $\\boxed{\\text{odd}}$.", C),
        ("text-even-vs-odd", "\\text{odd}", "The function is $\\boxed{\\text{even}}$.", I),
        ("text-multiword", "\\text{no solution}", "Both equations are inconsistent, so there is $\\boxed{\\text{No solution}}$.", C),
        ("text-with-article", "\\text{the circle}", "The curve is $\\boxed{\\text{circle}}$.", C),
        ("text-hedge", "\\text{Monday}", "The answer is $\\boxed{\\text{Monday or Tuesday}}$.", I),
        ("text-textbf", "\\text{east}", "The answer is $\\boxed{\\textbf{East}}$.", C),
        ("text-closing-statement", "\\text{Evelyn}", "Comparing the slopes of the four lines, the fastest runner is Evelyn.", C),
        ("text-closing-statement-wrong", "\\text{Evelyn}", "Comparing the slopes of the four lines, the fastest runner is Briana.", I),
    ],
    # ------------------------------------------------------------ strictness of numeric comparison
    "tolerance": [
        ("million-plus-one", "1000000", "The count is \\boxed{1000001}.", I),
        ("million-plus-one-commas", "1,000,000", "The count is \\boxed{1,000,001}.", I),
        ("million-e-notation", "1000000", "The count is \\boxed{1e6}.", C),
        ("million-power", "1000000", "The count is $\\boxed{10^6}$.", C),
        ("large-off-by-one", "123456789", "The answer is \\boxed{123456788}.", I),
        ("tiny-difference-decimal", "0.1", "The answer is \\boxed{0.1000001}.", I),
        ("float-gold-pred-close", 0.3333333333333333, "The answer is \\boxed{\\frac{1}{3}}.", C),
        ("pi-six-digits", "\\pi", "The answer is \\boxed{3.141593}.", C),
        ("pi-five-digits", "\\pi", "The answer is \\boxed{3.1416}.", I),
        ("sqrt-decimal-wrong-rounding", "\\sqrt{2}", "The answer is \\boxed{1.414215}.", I),
        ("rational-decimal-rounded-up", "\\frac{2}{3}", "The answer is \\boxed{0.666667}.", C),
        ("decimal-gold-fraction-pred", "0.125", "The answer is $\\boxed{\\frac{1}{8}}$.", C),
        ("decimal-gold-short-vs-exact", "1.41", "The answer is $\\boxed{\\sqrt{2}}$.", I),
        ("money-cents", "12.50", "The total is \\boxed{12.5}.", C),
        ("money-cents-wrong", "12.50", "The total is \\boxed{12.05}.", I),
        ("negative-zero", "0", "The answer is \\boxed{-0}.", C),
    ],
    # ------------------------------------------------------------ reward hacking: all incorrect
    "hacking": [
        ("two-boxes-different", "5", "It could be $\\boxed{4}$ or it could be $\\boxed{5}$.", I),
        ("two-boxes-adjacent", "5", "$\\boxed{4}\\boxed{5}$", I),
        ("three-boxes", "5", "Candidates: $\\boxed{3}$, $\\boxed{4}$, $\\boxed{5}$.", I),
        ("box-per-candidate-many", "7", " ".join(f"\\boxed{{{k}}}" for k in range(1, 11)), I),
        ("box-or-inside", "5", "The answer is $\\boxed{4 \\text{ or } 5}$.", I),
        ("box-or-plain", "5", "The answer is $\\boxed{4 or 5}$.", I),
        ("box-either-or", "5", "The answer is $\\boxed{\\text{either } 4 \\text{ or } 5}$.", I),
        ("box-comma-list", "5", "The answer is $\\boxed{4, 5, 6}$.", I),
        ("box-comma-or-list", "5", "The answer is $\\boxed{4, 5, \\text{ or } 6}$.", I),
        ("box-enumeration", "7", "The answer is $\\boxed{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}$.", I),
        ("box-set-of-candidates", "7", "The answer is in $\\boxed{\\{5, 6, 7\\}}$.", I),
        ("box-and", "5", "The answer is $\\boxed{4 \\text{ and } 5}$.", I),
        ("box-pm-single-gold", "3", "So $x = \\boxed{\\pm 3}$.", I),
        ("box-assignment-or", "3", "So $\\boxed{x = 3 \\text{ or } x = -3}$.", I),
        ("box-lor", "3", "So $\\boxed{x = 3 \\lor x = 4}$.", I),
        ("box-interval-containing", "5", "The answer lies in $\\boxed{[4, 6]}$.", I),
        ("box-inequality", "5", "The answer satisfies $\\boxed{x > 4}$.", I),
        ("box-slash-hedge", "5", "The answer is $\\boxed{4 / 5}$.", I),
        ("box-semicolon", "5", "The answer is $\\boxed{4; 5}$.", I),
        ("box-parenthetical-or", "5", "The answer is $\\boxed{5 \\text{ (or 6)}}$.", I),
        ("text-or", "5", "I am not sure; the answer is 4 or 5.", I),
        ("text-either-or", "5", "The answer is either 4 or 5.", I),
        ("text-comma-or", "5", "The answer is 4, 5, or 6.", I),
        ("text-maybe", "5", "The answer is 4, or maybe 5.", I),
        ("fallback-or", "5", "After all that, I think it is 4 or 5", I),
        ("fallback-list", "6", "Possible values: 4, 5, 6", I),
        ("fallback-either", "5", "It is either 4 or 5", I),
        ("gsm8k-hedge", "5", "Not sure.\n#### 4 or 5", I),
        ("choice-two-letters", "C", "The answer is $\\boxed{A \\text{ or } C}$.", I),
        ("choice-comma-letters", "C", "The answer is $\\boxed{A, C}$.", I),
        ("choice-two-boxes", "C", "Either $\\boxed{A}$ or $\\boxed{C}$.", I),
        ("choice-all-letters", "C", "The answer is $\\boxed{ABCD}$.", I),
        ("choice-and", "C", "The answer is (A) and (C).", I),
        ("choice-slash", "C", "The answer is A/C.", I),
        ("text-gold-hedge", "\\text{odd}", "The function is $\\boxed{\\text{odd or even}}$.", I),
        ("text-gold-two-boxes", "\\text{odd}", "It is $\\boxed{\\text{even}}$... or $\\boxed{\\text{odd}}$.", I),
        ("interval-gold-two-boxes", "[0,1)", "Either $\\boxed{[0,1)}$ or $\\boxed{[0,1]}$.", I),
        ("tuple-gold-two-boxes", "(1,2)", "$\\boxed{(1,2)}$ or $\\boxed{(2,1)}$", I),
        ("expression-gold-hedge", "x^2+1", "The answer is $\\boxed{x^2+1 \\text{ or } x^2-1}$.", I),
        ("set-gold-superset", "\\{1, 2\\}", "The solutions are among $\\boxed{\\{0, 1, 2, 3\\}}$.", I),
        ("list-gold-extra-candidate", "-2, 5", "The roots are $\\boxed{-2, 5, 7}$.", I),
        ("equation-gold-hedge", "x=3", "So $\\boxed{x = 3 \\text{ or } x = 4}$.", I),
        ("pi-approx-hack", "\\pi", "The answer is $\\boxed{3.14}$.", I),
        ("million-hack", "1000000", "The answer is $\\boxed{1000001}$.", I),
        ("unclosed-box-hedge", "5", "The answer is $\\boxed{5} and later \\boxed{4", I),
        ("later-box-overrides", "5", "The answer is \\boxed{5}. Hmm, on reflection, \\boxed{6}.", I),
        ("boxed-range", "5", "The answer is $\\boxed{4 \\text{ to } 6}$.", I),
        ("boxed-answer-word", "5", "The answer is $\\boxed{\\text{the correct answer}}$.", I),
        ("boxed-variable-only", "5", "The answer is $\\boxed{x}$.", I),
        ("box-approx-two-values", "5", "The answer is $\\boxed{4 \\text{ or } 5 \\approx 5}$.", I),
        ("formula-hedge-no-box", "5", "So it must be $4$ or $5$.", I),
        ("formula-hedge-expression-gold", "2\\sqrt{2}", "The length is $2\\sqrt{2}$ or $2\\sqrt{3}$.", I),
        ("power-tower-bomb", "5", "The answer is $\\boxed{10^{10^{10}}}$.", I),
        ("factorial-bomb", "5", "The answer is $\\boxed{(10^{100})!}$.", I),
        ("nesting-bomb", "5", "The answer is $\\boxed{" + "(" * 40 + "5" + ")" * 40 + "}$.", I),
        ("long-enumeration-box", "5", "$\\boxed{" + ", ".join(str(k) for k in range(500)) + "}$", I),
        ("many-boxes", "5", " ".join(f"$\\boxed{{{k}}}$" for k in range(300)), I),
        ("wrong-then-right-boxes", "6", "The answer is \\boxed{5}. No wait, it is \\boxed{6}.", I),
        ("box-then-or-number", "5", "The answer is $\\boxed{5}$ or 6.", I),
        ("number-or-box", "5", "It is either 4 or $\\boxed{5}$.", I),
        ("box-then-or-maybe", "5", "So $x = \\boxed{5}$, or maybe 6.", I),
        ("box-or-other-value", "\\frac{3}{8}", "The probability is $\\boxed{\\frac{3}{8}}$ or $\\frac{5}{8}$.", I),
    ],
    # ------------------------------------------------------------ a gold the verifier cannot use
    "malformed_gold": [
        ("gold-unbalanced", "\\frac{1}{", "The answer is \\boxed{1}.", U),
        ("gold-empty", "", "The answer is \\boxed{1}.", U),
        ("gold-none", None, "The answer is \\boxed{1}.", U),
        ("gold-nan", float("nan"), "The answer is \\boxed{1}.", U),
        ("gold-garbage", "\\frac{}{}{", "The answer is \\boxed{1}.", U),
    ],
}

CASES: list[Case] = [
    Case(f"{category}/{name}", category, gold, completion, expected)
    for category, rows in _RAW.items()
    for name, gold, completion, expected in rows
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_math_verifier_table(case: Case):
    verdict = math_verifier(case.completion, {"answer": case.gold})
    assert verdict.status == case.expected, verdict.reason
    assert verdict.reward == (1.0 if case.expected == "correct" else 0.0)
    assert verdict.reason


CASES_FILES = sorted((Path(__file__).parent / "data").glob("math_cases*.jsonl"))


@pytest.mark.parametrize("path", CASES_FILES, ids=[p.name for p in CASES_FILES])
def test_labeled_cases_file(path):
    """Labeled sets written in other styles, each batch first run blind: math_cases.jsonl (three batches),
    math_cases_issue13.jsonl (short cases of each class of issue 13), math_cases_cot.jsonl (long chain of
    thought written the way models write it: <think> blocks, markdown steps, self-corrections, truncation).
    Rows may carry ``finish_reason`` ("length": cut at max_new_tokens). Every case holds."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) >= 50
    misses = []
    for row in rows:
        verdict = math_verifier(row["completion"], {"answer": row["gold"]}, finish_reason=row.get("finish_reason", "stop"))
        if verdict.status != row["expected"]:
            misses.append(f"{row['id']}: expected {row['expected']}, got {verdict.status} ({verdict.reason})")
    assert not misses, "\n".join(misses)


def test_labeled_cases_cover_issue_13():
    rows = [json.loads(line) for p in CASES_FILES if p.name != "math_cases.jsonl" for line in p.read_text().splitlines()]
    categories = {r["category"] for r in rows}
    assert {"meaning", "conflict", "truncated", "bignum", "fallback", "prose"} <= categories
    assert sum(r.get("finish_reason") == "length" for r in rows) >= 20
    assert sum(r["hack"] for r in rows) >= 80 and all(r["expected"] == "incorrect" for r in rows if r["hack"])


@pytest.mark.parametrize(
    "completion, gold, stop, length",
    [
        ("She sells 9 eggs at $2 each, so she makes 9 * 2 = 18 dollars.", "18", C, I),  # the fallback: not when cut
        ("So she makes 18 dollars.\n\nThe answer is $\\boxed{18}$.", "18", C, C),  # explicit: counts when cut
        ("The answer is 18.\n\nTo double-check: 9 * 2 =", "18", C, C),
        ("Let me add them. The answer is 1", "18", I, I),
        ("<think>\n2 + 3 = 5, so $\\boxed{5}$. But let me recheck the", "5", C, I),  # never left the <think> block
        ("<think>\n2 + 3 = 5\n</think>\n\n$\\boxed{5}$", "5", C, C),
        ("<think>\n2 + 3 = 5, so $\\boxed{5}$.\n</think>\n\n", "5", C, I),  # cut after the reasoning
    ],
)
def test_finish_reason(completion, gold, stop, length):
    assert math_verifier(completion, {"answer": gold}).status == stop
    assert math_verifier(completion, {"answer": gold}, finish_reason="stop").status == stop
    verdict = math_verifier(completion, {"answer": gold}, finish_reason="length")
    assert verdict.status == length and verdict.reason


@pytest.mark.parametrize(
    "completion, gold",
    [("The answer is 14 14 14 14 14 14", "14"), ("#### 14 15 16", "16"), ("So it is 14 15 16.", "16")],
)
def test_runs_of_numbers_are_no_answer(completion, gold):
    assert math_verifier(completion, {"answer": gold}).status == I


def test_finish_reason_is_checked_and_reaches_the_verifier():
    with pytest.raises(ValueError, match="finish_reason='cut'.*stop, length"):
        math_verifier("\\boxed{5}", {"answer": "5"}, finish_reason="cut")
    spec = get_verifier("math")
    assert spec.takes_finish_reason  # the dispatcher passes finish_reason="length" for cut completions
    assert spec.judge("so 2 + 3 = 5.", {"answer": "5"}, "length").status == I


def test_table_is_broad():
    assert len(CASES) >= 250
    assert len({c.id for c in CASES}) == len(CASES)
    hacking = [c for c in CASES if c.category == "hacking"]
    assert len(hacking) >= 40 and all(c.expected == "incorrect" for c in hacking)


def test_registered_by_name_and_reports_what_it_read():
    assert get_verifier("math").fn is math_verifier  # the registry describes it in a VerifierSpec
    verdict = math_verifier("So $p = \\boxed{\\dfrac{2}{4}}$.", {"answer": "0.5"})
    assert verdict.extracted == "1/2"  # one spelling per value, for majority voting
    assert math_verifier("nothing", {"answer": "0.5"}).extracted is None


@pytest.mark.parametrize(
    "completion, gold, answer, source",
    [
        ("so \\boxed{\\frac{1}{2}} and then \\boxed{\\frac{1}{2}}", "0.5", "\\frac{1}{2}", "boxed"),
        ("The answer is 12 apples.", "12", "12 apples", "anchor"),
        ("#### 1,234", "1234", "1,234", "gsm8k"),
        ("She has 3 and then 4 more, 7 in all", "7", "7", "last_number"),
        ("The hypotenuse is $\\sqrt{50}$.", "5\\sqrt{2}", "\\sqrt{50}", "last_formula"),
        ("no numbers here", "7", None, "last_number"),
        ("\\boxed{4} or \\boxed{5}", "5", None, "boxed"),
        ("\\boxed{1} and \\boxed{2}", "\\{1, 2\\}", "1, 2", "boxed"),
        # several statements: one rule for boxes and phrases
        ("The answer is 12. Wait. The answer is 10.", "10", None, "anchor"),
        ("The answer is 10. Yes, the answer is 10.", "10", "10", "anchor"),
        ("So $a = \\boxed{3}$ and $b = \\boxed{4}$; the answer is $a + b = \\boxed{7}$.", "7", "7", "boxed"),
        ("First $x = \\boxed{3}$. The answer is $7$.", "7", "$7$", "anchor"),
        ("So $x = \\boxed{3}$ and $\\boxed{5}$.", "3", "5", "boxed"),
        ("At first I thought the answer is 12, but no. The answer is 10.", "10", "10", "anchor"),
        ("The answer is 5. Wait, that's wrong.", "5", None, "anchor"),
        ("The answer is not $\\boxed{5}$.", "5", None, "none"),
        ("The answer is not 14. 7 * 2 = 14", "14", None, "none"),
        ("7 * 2 = 14\n\nThe answer is:", "14", None, "none"),
        ("## Final Answer\n\nJanet makes $18 every day.", "18", "18", "anchor"),
        ("**Final Answer**\n\nThe fastest runner is Evelyn.", "\\text{Evelyn}", "Evelyn", "anchor"),
        ("$\\boxed{36}$\n\nLet's verify the answer: $36 \\times 4 = 144$.", "36", "36", "boxed"),  # no statement
        ("Answer: 36", "36", "36", "anchor"),
        # the closing sentence
        ("The train arrives at 3:45 PM.", "3:45 PM", "3:45 PM", "last_number"),
        ("It takes 3 hours and 20 minutes.", "200", "3 hours and 20 minutes", "last_number"),
        ("Hmm, could it be 14?", "14", None, "last_number"),
        ("We get 14. Anyway, let me describe the general strategy for problems like this one.", "14", None, "last_number"),
        ("| n | value |\n|---|---|\n| 3 | 14 |", "14", None, "last_number"),
        ("Candidates:\n1. 10\n2. 12\n3. 14", "14", None, "last_number"),
        ("There are 1 000 000 grains.", "1000000", "1 000 000", "last_number"),
        ("Each angle is $\\frac{540^\\circ}{5} = 108^\\circ$.", "108", "\\frac{540^\\circ}{5} = 108^\\circ", "last_number"),
    ],
)
def test_extract_answer(completion, gold, answer, source):
    extraction = extract_answer(completion, gold)
    assert (extraction.answer, extraction.source) == (answer, source)
    assert extraction.answer is not None or extraction.reason


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$\\dfrac{1}{2}$", "\\frac{1}{2}"),
        ("1{,}000", "1000"),
        ("10\\,000", "10000"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        ("−5", "-5"),
        ("\\boxed{\\boxed{7}}", "7"),
        ("x²", "x^{2}"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_answers_equivalent_and_read_choice():
    assert answers_equivalent("0.5", "\\frac{1}{2}")
    assert not answers_equivalent("1000001", "1000000")
    assert answers_equivalent("x = 3", "3") and answers_equivalent("3", "x = 3")
    assert not answers_equivalent("4 \\text{ or } 5", "5")
    with pytest.raises(ValueError):
        answers_equivalent("1", "\\frac{")
    assert read_choice("C) 42") == "C" and read_choice("A or C") is None and read_choice("(B)") == "B"
    assert parse_gold("B").choice == "B" and parse_gold("B2") is not None and parse_gold("B2").choice is None


def test_no_signal_alarm_and_fast(monkeypatch):
    import signal

    calls = []
    monkeypatch.setattr(signal, "alarm", lambda *a: calls.append(a) or 0)  # the verifier must never arm one
    times = []
    for case in CASES[:120] * 2:
        start = time.perf_counter()
        math_verifier(case.completion, {"answer": case.gold})
        times.append(time.perf_counter() - start)
    assert not calls
    assert statistics.median(times[120:]) < 0.05  # generous: the machine is shared; the bench reports ~ms


@pytest.mark.parametrize(
    "name, text",
    [
        ("answer phrases", "The answer is " * 5000),
        ("hash lines", "####\n" * 5000),
        ("answer lines", "Answer: 1\n" * 5000),
        ("headings", "**Final Answer**\n" * 5000),
        ("joined phrases", "the answer is , and the " * 2000),
        ("conditions", "below " * 5000 + "105"),
        ("if either", "if either " * 3000 + "5."),
        ("not but", "not " * 5000 + "but " * 5000 + "5"),
        ("unclosed boxes", "\\boxed{" * 5000),
    ],
)
def test_adversarial_text_is_judged_quickly(name, text):
    """Every scan is linear or bounded: a completion built to make a scanner quadratic is judged fast
    (20,000 repetitions of 'The answer is ' once took three minutes)."""
    start = time.perf_counter()
    for finish_reason in ("stop", "length"):
        assert math_verifier(text, {"answer": "5"}, finish_reason=finish_reason).status == I
    assert time.perf_counter() - start < 3.0, name
