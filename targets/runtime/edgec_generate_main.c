/* edgec-generate: greedy decoding with a decoder-only model (KV cache as inputs and outputs),
 * written in C against edgec_runtime.h only -- the example of the C API's decode loop.
 *
 *   edgec-generate model.so [--metadata m.json] --prompt-ids 1,2,3 [--max-new-tokens N]
 *                  [--logits-dir DIR] [--threads N] [--quiet]
 *
 * The model has optimum's interface (as `edgec generate`): inputs `input_ids` [batch, seq],
 * optional `attention_mask` [batch, past + seq] and `position_ids` [batch, seq], and
 * `past_key_values.<i>.key/.value` [batch, kv_heads, past, head_dim]; outputs `logits`
 * [batch, seq, vocab] and `present.<i>.key/.value` [batch, kv_heads, past + seq, head_dim].
 * Batch 1. The prefill runs the prompt on an empty cache (past length 0); each of the next
 * N - 1 steps runs one token (the previous greedy one), its pasts the previous step's presents
 * (edgec_set_input_from_output: shared, not copied). Prints one line per step (logits shape, sum,
 * sum of |x|, the greedy token), then `tokens: ...` and a timing line. --logits-dir writes each
 * step's logits as DIR/logits_<step>.npy (step 0: the prefill). Exit 2 with one line on error.
 *
 * A model compiled with `edgec compile --kv-cache MAX` declares its pasts [batch, kv_heads, MAX,
 * head_dim] (MAX fixed) and has no present outputs: it writes each step's rows into the past
 * inputs in place. Then each cache input is set once, zeroed, before the prefill, and never again:
 * the C API keeps input tensors across edgec_run calls, so the model's writes stay (no per-token
 * allocation or copy of the cache). A prompt plus new tokens beyond MAX is refused before the run.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgec_runtime.h"

#define MAX_CACHE 256

static void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("edgec-generate: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void check(edgec_model* m, int rc, const char* what) {
  if (rc != EDGEC_OK) die("%s: %s", what, edgec_last_error(m));
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Parse "1,2,3" into a malloc'ed array; *n gets the count. */
static int64_t* parse_ids(const char* text, int* n) {
  int cap = 16, count = 0;
  int64_t* ids = (int64_t*)malloc(cap * sizeof(int64_t));
  const char* p = text;
  while (*p) {
    char* end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0) die("--prompt-ids wants comma-separated token ids >= 0, got '%s'", text);
    if (count == cap) ids = (int64_t*)realloc(ids, (cap *= 2) * sizeof(int64_t));
    ids[count++] = (int64_t)v;
    p = end;
    if (*p == ',') ++p;
    else if (*p) die("--prompt-ids wants comma-separated token ids >= 0, got '%s'", text);
  }
  if (count == 0) die("--prompt-ids is empty");
  *n = count;
  return ids;
}

/* Set input idx (int64 or int32, per the model) to a [1, n] row: values[k], or base + k when
 * values is NULL. */
static void set_int_row(edgec_model* m, int idx, const int64_t* values, int64_t base, int64_t n) {
  const char* dt = edgec_input_dtype(m, idx);
  int wide = strcmp(dt, "int64") == 0;
  if (!wide && strcmp(dt, "int32") != 0)
    die("input '%s' is %s; token ids, masks and positions must be int64 or int32",
        edgec_input_name(m, idx), dt);
  int64_t shape[2] = {1, n};
  check(m, edgec_set_input_shape(m, idx, shape, 2, NULL), "set_input_shape");
  void* buf = malloc(n * 8 + 8);
  for (int64_t k = 0; k < n; ++k) {
    int64_t v = values ? values[k] : base + k;
    if (wide) ((int64_t*)buf)[k] = v;
    else ((int32_t*)buf)[k] = (int32_t)v;
  }
  check(m, edgec_set_input(m, idx, buf, (size_t)n * (wide ? 8 : 4)), "set_input");
  free(buf);
}

static void write_npy(const char* path, const float* data, const int64_t* shape, int ndim) {
  char header[256], dims[160] = "";
  size_t numel = 1;
  for (int i = 0; i < ndim; ++i) {
    char d[32];
    snprintf(d, sizeof d, "%lld%s", (long long)shape[i], ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    strncat(dims, d, sizeof dims - strlen(dims) - 1);
    numel *= (size_t)shape[i];
  }
  int len = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
  while ((10 + len + 1) % 64) header[len++] = ' ';
  header[len++] = '\n';
  FILE* f = fopen(path, "wb");
  if (!f) die("cannot write '%s'", path);
  unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
  int ok = fwrite(magic, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len &&
           fwrite(data, sizeof(float), numel, f) == numel;
  if (fclose(f) != 0 || !ok) die("cannot write '%s'", path);
}

int main(int argc, char** argv) {
  const char *lib = NULL, *meta = NULL, *prompt_text = NULL, *logits_dir = NULL;
  int max_new = 16, quiet = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    int has_value = i + 1 < argc;
    if (!strcmp(a, "--prompt-ids") && has_value) prompt_text = argv[++i];
    else if (!strcmp(a, "--max-new-tokens") && has_value) max_new = atoi(argv[++i]);
    else if (!strcmp(a, "--logits-dir") && has_value) logits_dir = argv[++i];
    else if (!strcmp(a, "--metadata") && has_value) meta = argv[++i];
    else if (!strcmp(a, "--threads") && has_value) {
      int n = atoi(argv[++i]);
      if (n < 1) die("--threads must be >= 1");
      check(NULL, edgec_set_num_threads(n), "--threads");
    } else if (!strcmp(a, "--quiet")) quiet = 1;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: edgec-generate model.so [--metadata m.json] --prompt-ids 1,2,3 "
             "[--max-new-tokens N] [--logits-dir DIR] [--threads N] [--quiet]\n");
      return 0;
    } else if (!lib && a[0] != '-') lib = a;
    else die("unexpected argument '%s' (try --help)", a);
  }
  if (!lib) die("no model library given (try --help)");
  if (!prompt_text) die("--prompt-ids is required");
  if (max_new < 1) die("--max-new-tokens must be >= 1");
  int n_prompt = 0;
  int64_t* prompt = parse_ids(prompt_text, &n_prompt);

  char err[1024];
  double t_load = now_ms();
  edgec_model* m = meta ? edgec_load_with_metadata(lib, meta, err, sizeof err)
                        : edgec_load(lib, err, sizeof err);
  if (!m) die("%s", err);
  t_load = now_ms() - t_load;

  /* The interface: which input is which, and each past's present. */
  int ids = -1, mask = -1, pos = -1, logits = edgec_output_index(m, "logits");
  int past[MAX_CACHE], present[MAX_CACHE], n_cache = 0;
  int64_t in_place = -1; /* the cache length of a --kv-cache model (pasts written in place), else -1 */
  const char* prefix = "past_key_values.";
  for (int i = 0; i < edgec_num_inputs(m); ++i) {
    const char* name = edgec_input_name(m, i);
    if (!strcmp(name, "input_ids")) ids = i;
    else if (!strcmp(name, "attention_mask")) mask = i;
    else if (!strcmp(name, "position_ids")) pos = i;
    else if (!strncmp(name, prefix, strlen(prefix)) && n_cache < MAX_CACHE) {
      char out_name[512];
      snprintf(out_name, sizeof out_name, "present.%s", name + strlen(prefix));
      int o = edgec_output_index(m, out_name);
      int nd = edgec_input_declared_ndim(m, i);
      const int64_t* d = edgec_input_declared_shape(m, i);
      if (nd != 4 || d[1] < 0 || d[3] < 0)
        die("input '%s' must be declared [batch, kv_heads, past, head_dim] with fixed kv_heads "
            "and head_dim (metadata.json)", name);
      if (o < 0 && d[2] < 0) die("input '%s' has no output '%s' to feed it on the next step", name, out_name);
      int64_t cache_rows = o < 0 ? d[2] : -1; /* no present, a fixed length: written in place */
      if (cache_rows >= 0 && strcmp(edgec_input_dtype(m, i), "float32") != 0)
        die("input '%s' is %s; edgec-generate's in-place caches are float32", name, edgec_input_dtype(m, i));
      if (n_cache > 0 && cache_rows != in_place)
        die("input '%s': every past must be written in place (--kv-cache) or fed from its present, "
            "with one cache length", name);
      in_place = cache_rows;
      past[n_cache] = i;
      present[n_cache++] = o;
    } else {
      die("input '%s' is not one of input_ids, attention_mask, position_ids, "
          "past_key_values.*", name);
    }
  }
  if (ids < 0 || logits < 0 || n_cache == 0)
    die("not a decoder with a KV cache: needs input 'input_ids', output 'logits' and "
        "past_key_values.* inputs");

  if (in_place >= 0 && n_prompt + max_new - 1 > in_place)
    die("the prompt (%d tokens) and %d new tokens need %d cache rows; the model's KV cache has %lld "
        "(--kv-cache)", n_prompt, max_new, n_prompt + max_new - 1, (long long)in_place);
  int64_t* tokens = (int64_t*)malloc(sizeof(int64_t) * max_new);
  double* step_ms = (double*)malloc(sizeof(double) * max_new);
  int64_t past_len = 0;
  for (int step = 0; step < max_new; ++step) {
    int64_t n = step == 0 ? n_prompt : 1;
    set_int_row(m, ids, step == 0 ? prompt : &tokens[step - 1], 0, n);
    if (mask >= 0) {
      int64_t* ones = (int64_t*)malloc(sizeof(int64_t) * (past_len + n));
      for (int64_t k = 0; k < past_len + n; ++k) ones[k] = 1;
      set_int_row(m, mask, ones, 0, past_len + n);
      free(ones);
    }
    if (pos >= 0) set_int_row(m, pos, NULL, past_len, n);
    for (int c = 0; c < n_cache && in_place >= 0 && step == 0; ++c) { /* the buffers, once, zeroed */
      int64_t shape[4];
      memcpy(shape, edgec_input_declared_shape(m, past[c]), sizeof shape);
      shape[0] = 1;
      check(m, edgec_set_input_shape(m, past[c], shape, 4, NULL), "set_input_shape");
      size_t bytes = (size_t)(shape[1] * shape[2] * shape[3]) * 4;
      void* zeros = calloc(1, bytes);
      if (!zeros) die("cannot allocate the KV cache (%zu bytes)", bytes);
      check(m, edgec_set_input(m, past[c], zeros, bytes), "set_input");
      free(zeros);
    }
    for (int c = 0; c < n_cache && in_place < 0; ++c) {
      if (step == 0) { /* empty cache: a zero-length past dim, no data */
        int64_t shape[4];
        memcpy(shape, edgec_input_declared_shape(m, past[c]), sizeof shape);
        shape[0] = 1;
        shape[2] = 0;
        check(m, edgec_set_input_shape(m, past[c], shape, 4, NULL), "set_input_shape");
        check(m, edgec_set_input(m, past[c], NULL, 0), "set_input");
      } else {
        check(m, edgec_set_input_from_output(m, past[c], present[c]), "set_input_from_output");
      }
    }
    double t0 = now_ms();
    check(m, edgec_run(m), "run");
    step_ms[step] = now_ms() - t0;

    const char* dt = edgec_output_dtype(m, logits);
    int nd = edgec_output_ndim(m, logits);
    const int64_t* shape = edgec_output_shape(m, logits);
    if (strcmp(dt, "float32") != 0) die("output 'logits' is %s; edgec-generate reads float32", dt);
    if (nd < 1 || shape[nd - 1] < 1) die("output 'logits' has no vocabulary axis");
    const float* x = (const float*)edgec_output_data(m, logits);
    if (!x) die("output_data: %s", edgec_last_error(m));
    size_t numel = edgec_output_bytes(m, logits) / sizeof(float);
    int64_t vocab = shape[nd - 1];
    const float* last = x + numel - vocab; /* the last position's row */
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (last[v] > last[best]) best = v;
    tokens[step] = best;
    double sum = 0, sum_abs = 0;
    for (size_t k = 0; k < numel; ++k) {
      sum += x[k];
      sum_abs += x[k] < 0 ? -x[k] : x[k];
    }
    if (!quiet) {
      printf("step %d %s: logits float32[", step, step == 0 ? "(prefill)" : "(decode)");
      for (int k = 0; k < nd; ++k) printf("%s%lld", k ? "," : "", (long long)shape[k]);
      printf("] sum=%.9g sum_abs=%.9g token=%lld %.3f ms\n", sum, sum_abs, (long long)best,
             step_ms[step]);
    }
    if (logits_dir) {
      char path[4096];
      snprintf(path, sizeof path, "%s/logits_%d.npy", logits_dir, step);
      write_npy(path, x, shape, nd);
    }
    past_len += n;
  }
  printf("tokens:");
  for (int k = 0; k < max_new; ++k) printf(" %lld", (long long)tokens[k]);
  printf("\n");
  double median = 0;
  if (max_new > 1) {
    qsort(step_ms + 1, max_new - 1, sizeof(double), cmp_double);
    median = max_new % 2 ? (step_ms[max_new / 2] + step_ms[max_new / 2 + 1]) / 2 : step_ms[max_new / 2];
  }
  printf("timing: load %.2f ms, prefill %.3f ms (%d tokens), decode %.3f ms/token "
         "(median of %d steps)\n", t_load, step_ms[0], n_prompt, median, max_new - 1);
  free(tokens);
  free(step_ms);
  free(prompt);
  edgec_free(m);
  return 0;
}
