from edgec.passes.fusion.simplify_slice_concat import SimplifySliceConcat
from edgec.rewrite.testing import check_pass

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def test_slice_reading_one_concat_input_is_that_input():
    text = HEAD + """g (float[1,3,4] a, float[1,5,4] b) => (float[1,5,4] y)
        <int64[1] s = {3}, int64[1] e = {8}, int64[1] ax = {1}>
        { c = Concat <axis = 1> (a, b)
          t = Slice (c, s, e, ax)
          y = Relu (t) }"""
    check_pass(text, SimplifySliceConcat(), ["Concat", "Relu"], rtol=0, atol=0)


def test_slice_reading_two_of_three_inputs_becomes_smaller_concat():
    text = HEAD + """g (float[2,1] a, float[2,2] b, float[2,3] c) => (float[2,3] y)
        <int64[1] s = {0}, int64[1] e = {3}, int64[1] ax = {-1}>
        { k = Concat <axis = -1> (a, b, c)
          y = Slice (k, s, e, ax) }"""
    check_pass(text, SimplifySliceConcat(), ["Concat", "Concat"], rtol=0, atol=0)


def test_concat_of_adjacent_slices_is_the_tensor():
    text = HEAD + """g (float[4,6] x) => (float[4,6] y)
        <int64[1] z = {0}, int64[1] m = {2}, int64[1] n = {6}, int64[1] ax = {1}>
        { p = Slice (x, z, m, ax)
          q = Slice (x, m, n, ax)
          k = Concat <axis = 1> (p, q)
          y = Sigmoid (k) }"""
    check_pass(text, SimplifySliceConcat(), ["Slice", "Slice", "Sigmoid"], rtol=0, atol=0)


def test_concat_of_adjacent_partial_slices_is_one_slice():
    text = HEAD + """g (float[4,6] x) => (float[4,4] y)
        <int64[1] a = {1}, int64[1] m = {3}, int64[1] n = {5}, int64[1] ax = {1}>
        { p = Slice (x, a, m, ax)
          q = Slice (x, m, n, ax)
          y = Concat <axis = 1> (p, q) }"""
    check_pass(text, SimplifySliceConcat(), ["Slice", "Slice", "Slice"], rtol=0, atol=0)


def test_must_not_fire_on_a_slice_that_splits_a_concat_input():
    text = HEAD + """g (float[1,3,4] a, float[1,5,4] b) => (float[1,4,4] y)
        <int64[1] s = {2}, int64[1] e = {6}, int64[1] ax = {1}>
        { c = Concat <axis = 1> (a, b)
          y = Slice (c, s, e, ax) }"""
    check_pass(text, SimplifySliceConcat(), ["Concat", "Slice"], modified=False)


def test_must_not_fire_on_non_adjacent_or_strided_slices():
    text = HEAD + """g (float[4,6] x) => (float[4,3] y)
        <int64[1] z = {0}, int64[1] o = {1}, int64[1] m = {2}, int64[1] n = {4}, int64[1] ax = {1}, int64[1] st = {2}>
        { p = Slice (x, z, o, ax)
          q = Slice (x, m, n, ax, o)
          y = Concat <axis = 1> (p, q) }"""
    check_pass(text, SimplifySliceConcat(), ["Slice", "Slice", "Concat"], modified=False)
