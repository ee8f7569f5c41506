"""Names crafted for injection: tensor, node, graph and model-file names that try to end a C
comment or string, continue a line, include a file, define a macro through a trigraph, run a
shell command, or close an HTML element. They are valid ONNX, so each compiles (exit 0) and then:
model.h compiles with `gcc -fsyntax-only -Wall -Werror -trigraphs`, defines no EDGEC_PWNED and
declares nothing named edgec_pwned; the --report HTML holds no `<script`; no `pwned` file
appears anywhere; where the names could be confused, `edgec run --compare-onnx` matches."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from tests.hostile import models as M
from tests.hostile.harness import CaseDir, Group, Spec, compile_argv

names = Group("names")
CASES = names.cases


def _named(x: str, y: str, node: str = "add0", graph: str = "g", w: str = "w"):
    return M.model([helper.make_node("Add", [x, w], [y], name=node)], [M.vi(x, [2, 3])], [M.vi(y, [2, 3])],
                   [numpy_helper.from_array(np.full((2, 3), 0.5, np.float32), w)], name=graph)


def _compiled(d: CaseDir, model_proto, file: str = "model.onnx", run: bool = False, extra_never=()) -> Spec:
    model = d.save(file, model_proto)

    def check(cd: CaseDir, outcome) -> None:
        cd.check_artifact("out")
        cd.check_header("out")
        cd.check_report("report.html")
        if run:
            cd.check_run("out", model)

    never = (str(d.path("pwned")), str(d.base / "pwned"), *extra_never)
    return Spec(compile_argv(model, "--report", "report.html"), code=0, check=check, never=never)


@names
def comment_close(d: CaseDir) -> Spec:
    return _compiled(d, _named("x */ int edgec_pwned; /* ", "y */ typedef int edgec_pwned; /*"))


@names
def quote_and_newline(d: CaseDir) -> Spec:
    return _compiled(d, _named('x"\n#define EDGEC_PWNED 1\nint edgec_pwned;\n"', 'y" edgec_pwned "'))


@names
def backslash_continuation(d: CaseDir) -> Spec:
    """A trailing backslash would splice the next header line into a string or a // comment."""
    return _compiled(d, _named("x\\", "y\\\nint edgec_pwned;\n// \\"))


@names
def include_directive(d: CaseDir) -> Spec:
    return _compiled(d, _named('x"\n#include "/etc/passwd"\n"', "y\n#include <stdio.h>\n#define EDGEC_PWNED 1\n"))


@names
def trigraphs(d: CaseDir) -> Spec:
    """`??/` is a backslash and `??=` a `#` under -trigraphs."""
    return _compiled(d, _named("x??/", "y??/\n??=define EDGEC_PWNED 1\n??/"))


@names
def html_in_report(d: CaseDir) -> Spec:
    s = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'
    return _compiled(d, _named("x" + s, "y" + s, node="n" + s, graph="g" + s, w="w" + s))


@names
def shell_metacharacters(d: CaseDir) -> Spec:
    pwned = d.path("pwned")
    x, y = f"$(touch {pwned})", f"`touch {pwned}`; touch {pwned} #"
    return _compiled(d, _named(x, y, node=f"n; rm -rf {d.path('keep')} ;", graph=f"$(touch {pwned})"), run=True)


@names
def shell_in_file_name(d: CaseDir) -> Spec:
    d.write("keep/important.txt", "do not delete\n")
    return _compiled(d, _named("x", "y"), file="$(touch pwned);rm -rf keep;`touch pwned`.onnx")


@names
def c_payload_in_file_name(d: CaseDir) -> Spec:
    """The model file's stem names the model in model.h (comment and include guard)."""
    return _compiled(d, _named("x", "y"), file='m" *??=\n#define EDGEC_PWNED 1\nint edgec_pwned;\\.onnx')


@names
def very_long_names(d: CaseDir) -> Spec:
    return _compiled(d, _named("x" * 10_000, "y" * 10_000, node="n" * 10_000, graph="g" * 10_000, w="w" * 10_000),
                     run=True)


@names
def collide_after_sanitizing(d: CaseDir) -> Spec:
    """`a.b`, `a_b` and `A-B` sanitize alike; the result (a.b - a_b * A-B) tells them apart."""
    nodes = [helper.make_node("Mul", ["a_b", "A-B"], ["t"], name="mul"), helper.make_node("Sub", ["a.b", "t"], ["y.z"], name="sub"),
             helper.make_node("Neg", ["a_b"], ["y_z"], name="neg")]
    m = M.model(nodes, [M.vi("a.b", [2, 3]), M.vi("a_b", [2, 3]), M.vi("A-B", [2, 3])],
                [M.vi("y.z", [2, 3]), M.vi("y_z", [2, 3])])
    return _compiled(d, m, run=True)


@names
def unicode_and_format_strings(d: CaseDir) -> Spec:
    return _compiled(d, _named("入力 %s%n{0}\u202e", "出力 %(x)s {y!r} \U0001F600", graph="グラフ%d"), run=True)


@names
def c_keywords_and_macros(d: CaseDir) -> Spec:
    return _compiled(d, _named("EDGEC_MODEL_NUM_INPUTS", "__LINE__", node="int", graph="EDGEC_MODEL_EDGEC_MODEL_H"))
