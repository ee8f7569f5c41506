/* The C API's contract for symbolic dims and decode loops, on a tiny GPT-2 bundle (2 layers,
 * kv_heads 4, head_dim 8, vocabulary 256; tests/models/tiny_gpt2_kv.onnx compiled with
 * --symbolic-dims). Prints one "label value" line per check; test_llm_arm.py asserts on them.
 * Usage: c_api_decode_checks model.so */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgec_runtime.h"

static edgec_model* m;

static void rc(const char* label, int code) {
  printf("%s %d %s\n", label, code, code == EDGEC_OK ? "" : edgec_last_error(m));
}

static int shape(int idx, int64_t a, int64_t b, int64_t c, int64_t d, int ndim) {
  int64_t s[4] = {a, b, c, d};
  return edgec_set_input_shape(m, idx, s, ndim, NULL);
}

/* input_ids / attention_mask / position_ids as [batch, n] of v (positions 0..n-1). */
static void ints(int idx, int64_t batch, int64_t n, int64_t v, int positions) {
  int64_t buf[64];
  for (int64_t k = 0; k < batch * n; ++k) buf[k] = positions ? k % n : v;
  int64_t s[2] = {batch, n};
  edgec_set_input_shape(m, idx, s, 2, NULL);
  edgec_set_input(m, idx, buf, (size_t)(batch * n) * 8);
}

static void empty_cache(int past_len_of_layer1) {
  for (int i = 3; i < 7; ++i) {
    int64_t len = i >= 5 ? past_len_of_layer1 : 0;
    float zeros[32] = {0};
    shape(i, 1, 4, len, 8, 4);
    edgec_set_input(m, i, len ? zeros : NULL, (size_t)len * 4 * 8 * 4);
  }
}

int main(int argc, char** argv) {
  char err[512];
  if (argc < 2 || !(m = edgec_load(argv[1], err, sizeof err))) {
    printf("load failed: %s\n", argc < 2 ? "usage" : err);
    return 1;
  }
  int ids = edgec_input_index(m, "input_ids"), mask = edgec_input_index(m, "attention_mask");
  int pos = edgec_input_index(m, "position_ids"), past0 = edgec_input_index(m, "past_key_values.0.key");
  int logits = edgec_output_index(m, "logits"), present0 = edgec_output_index(m, "present.0.key");
  printf("indices %d %d %d %d %d %d\n", ids, mask, pos, past0, logits, present0);
  const int64_t* d = edgec_input_declared_shape(m, past0);
  printf("declared %d %lld %lld %lld %lld\n", edgec_input_declared_ndim(m, past0), (long long)d[0],
         (long long)d[1], (long long)d[2], (long long)d[3]);
  const char* n0 = edgec_input_dim_name(m, past0, 0);
  const char* n1 = edgec_input_dim_name(m, past0, 1);
  const char* n4 = edgec_input_dim_name(m, past0, 4);
  printf("dim_names %s %s %s %s\n", n0 ? n0 : "NULL", n1 ? n1 : "NULL", n4 ? n4 : "NULL",
         edgec_input_dim_name(m, past0, 2));
  printf("present_dim2 %s\n", edgec_output_dim_name(m, present0, 2));
  printf("ndim_before_set %d\n", edgec_input_ndim(m, ids));

  rc("rank3", shape(past0, 1, 4, 0, 0, 3));
  rc("head_dim7", shape(past0, 1, 4, 0, 7, 4));
  rc("negative", shape(past0, 1, 4, -1, 8, 4));
  int64_t empty[4] = {1, 4, 0, 8};
  rc("dtype", edgec_set_input_shape(m, past0, empty, 4, "int64"));
  rc("unset_null", edgec_set_input(m, past0, NULL, 0));
  rc("from_output_before_run", edgec_set_input_from_output(m, past0, present0));
  printf("output_data_before_run %s\n", edgec_output_data(m, logits) ? "ptr" : "NULL");
  rc("empty_past", shape(past0, 1, 4, 0, 8, 4));
  rc("empty_past_null", edgec_set_input(m, past0, NULL, 0));
  rc("null_with_bytes", edgec_set_input(m, ids, NULL, 8));

  /* batch 2 tokens against batch 1 masks and caches */
  ints(ids, 2, 3, 1, 0);
  ints(mask, 1, 3, 1, 0);
  ints(pos, 1, 3, 0, 1);
  empty_cache(0);
  rc("batch_mismatch", edgec_run(m));
  /* layer 1's cache one longer than layer 0's */
  ints(ids, 1, 3, 1, 0);
  empty_cache(1);
  rc("past_mismatch", edgec_run(m));
  /* a token id beyond the vocabulary: the model's guard, an error code, no abort */
  empty_cache(0);
  ints(ids, 1, 3, 256, 0);
  rc("token_beyond_vocab", edgec_run(m));

  /* a valid prefill of 3 tokens from an empty cache, then one decode step fed the presents */
  ints(ids, 1, 3, 7, 0);
  rc("prefill", edgec_run(m));
  const int64_t* ls = edgec_output_shape(m, logits);
  printf("prefill_logits %d %lld %lld %lld\n", edgec_output_ndim(m, logits), (long long)ls[0],
         (long long)ls[1], (long long)ls[2]);
  static float copy[3 * 256];
  rc("get_output", edgec_get_output(m, logits, copy, sizeof copy));
  const void* view = edgec_output_data(m, logits);
  printf("output_data_same %d\n", view && memcmp(view, copy, sizeof copy) == 0);
  rc("ids_from_logits", edgec_set_input_from_output(m, ids, logits));
  for (int i = 3; i < 7; ++i) {
    char name[64];
    snprintf(name, sizeof name, "present.%d.%s", (i - 3) / 2, (i - 3) % 2 ? "value" : "key");
    rc("from_output", edgec_set_input_from_output(m, i, edgec_output_index(m, name)));
  }
  const int64_t* ps = edgec_input_shape(m, past0);
  printf("past_after_feed %lld %lld %lld %lld\n", (long long)ps[0], (long long)ps[1],
         (long long)ps[2], (long long)ps[3]);
  ints(ids, 1, 1, 7, 0);
  ints(mask, 1, 4, 1, 0);
  int64_t p3 = 3;
  int64_t s11[2] = {1, 1};
  edgec_set_input_shape(m, pos, s11, 2, NULL);
  edgec_set_input(m, pos, &p3, 8);
  rc("decode", edgec_run(m));
  ls = edgec_output_shape(m, logits);
  ps = edgec_output_shape(m, present0);
  printf("decode_shapes %lld %lld %lld\n", (long long)ls[1], (long long)ls[2], (long long)ps[2]);
  edgec_free(m);
  return 0;
}
