/* The C API's bundle contract, for both runtimes (vm and the armv7 call plan): every error comes
 * back as a code with a message (never abort/exit), the weights are mapped, and the thread count
 * changes the pool but not the results. Prints one "label value..." line per check;
 * test_c_api_bundles.py asserts on them.
 * Usage: c_api_error_checks model.so truncated/model.so garbage.so [seconds per thread count]
 *   model.so            a good bundle model (its weights.bin or model.consts beside it)
 *   truncated/model.so  the same model whose weights.bin (vm) or model.consts (plan) is cut short
 *   garbage.so          a file that is not a library */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgec_runtime.h"

/* One line, the message without newlines (so that the test sees one message per check). */
static void line(const char* label, int code, const char* msg) {
  printf("%s %d ", label, code);
  for (const char* p = msg ? msg : ""; *p; ++p) putchar(*p == '\n' ? ' ' : *p);
  putchar('\n');
}

static void rc(edgec_model* m, const char* label, int code) {
  line(label, code, code == EDGEC_OK ? "" : edgec_last_error(m));
}

#define MAX_TASKS 256
typedef struct {
  int n;
  long tid[MAX_TASKS];
  long ticks[MAX_TASKS]; /* utime + stime */
} tasks;

/* This process's threads and the CPU time each has used (/proc/self/task/<tid>/stat). */
static tasks snapshot(void) {
  tasks t = {0};
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  while (d && (e = readdir(d)) && t.n < MAX_TASKS) {
    if (e->d_name[0] == '.') continue;
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    FILE* f = fopen(path, "r");
    long utime = 0, stime = 0;
    if (f && fgets(buf, sizeof buf, f)) {
      char* p = strrchr(buf, ')'); /* after the command name: state ppid ... utime(12th) stime */
      for (int field = 0; p && field < 11; ++field) p = strchr(p + 1, ' ');
      if (p) sscanf(p, " %ld %ld", &utime, &stime);
    }
    if (f) fclose(f);
    t.tid[t.n] = atol(e->d_name);
    t.ticks[t.n++] = utime + stime;
  }
  if (d) closedir(d);
  return t;
}

static tasks g_start; /* the threads before any edgec call (qemu-user has a thread of its own) */

static int in(const tasks* t, long tid) {
  for (int j = 0; j < t->n; ++j)
    if (t->tid[j] == tid) return 1;
  return 0;
}

static long grew(const tasks* a, const tasks* b, int i) {
  long before = 0;
  for (int j = 0; j < a->n; ++j)
    if (a->tid[j] == b->tid[i]) before = a->ticks[j];
  return b->ticks[i] - before;
}

/* Threads that used CPU time between a and b: the main thread, and each thread started since
 * g_start (not qemu's own) whose CPU time grew. An idle pool worker sleeps and gets none, once its
 * spin-wait after starting is over (TVM's workers spin 300000 sched_yield()s before sleeping: over
 * a second under qemu; hence the warm-up in run_with); a worker running tasks gets ticks even on
 * a busy machine. */
static int busy(const tasks* a, const tasks* b) {
  long main_ticks = 0;
  for (int i = 0; i < b->n; ++i)
    if (b->tid[i] == (long)getpid()) main_ticks = grew(a, b, i);
  int n = main_ticks > 0;
  for (int i = 0; i < b->n; ++i)
    if (b->tid[i] != (long)getpid() && !in(&g_start, b->tid[i]))
      n += grew(a, b, i) > 0;
  return n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The /proc/self/maps line mapping a file whose name ends with `suffix` ("-" if none). */
static void mapped(const char* suffix) {
  FILE* f = fopen("/proc/self/maps", "r");
  char buf[1024], found[1024] = "-";
  size_t n = strlen(suffix);
  while (f && fgets(buf, sizeof buf, f)) {
    size_t len = strcspn(buf, "\n");
    buf[len] = '\0';
    if (len >= n && strcmp(buf + len - n, suffix) == 0) {
      strcpy(found, buf);
      break;
    }
  }
  if (f) fclose(f);
  printf("mapping %s\n", found);
}

/* Deterministic inputs: floats in [-1, 1), integers in [0, 512). */
static void fill_inputs(edgec_model* m) {
  for (int i = 0; i < edgec_num_inputs(m); ++i) {
    size_t bytes = edgec_input_bytes(m, i);
    unsigned char* buf = malloc(bytes ? bytes : 1);
    const char* dt = edgec_input_dtype(m, i);
    uint32_t s = 12345u + (uint32_t)i;
    for (size_t k = 0; !strcmp(dt, "float32") && k < bytes / 4; ++k) {
      s = s * 1664525u + 1013904223u;
      ((float*)buf)[k] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
    }
    for (size_t k = 0; !strcmp(dt, "int64") && k < bytes / 8; ++k) ((int64_t*)buf)[k] = (int64_t)(k * 37 % 512);
    for (size_t k = 0; !strcmp(dt, "int32") && k < bytes / 4; ++k) ((int32_t*)buf)[k] = (int32_t)(k * 37 % 512);
    rc(m, "set_input", edgec_set_input(m, i, buf, bytes));
    free(buf);
  }
}

/* Output 0 after runs with n threads (malloc'ed, *bytes long). Runs for at least `seconds`, so
 * that every thread doing work accrues CPU ticks; prints the threads of the process and how many
 * of them used CPU time during the runs. */
static unsigned char* run_with(edgec_model* m, int n, double seconds, size_t* bytes) {
  rc(NULL, "set_num_threads", edgec_set_num_threads(n));
  rc(m, "run", edgec_run(m)); /* the pool exists from here */
  int runs = 0;
  tasks a = {0};
  for (int phase = 0; phase < 2; ++phase) { /* warm up (3x: idle workers stop spinning), measure */
    a = snapshot();
    runs = 0;
    for (double t0 = now_s(); now_s() - t0 < (phase ? seconds : 3 * seconds); ++runs)
      if (edgec_run(m) != EDGEC_OK) break;
  }
  tasks b = snapshot();
  printf("threads%d %d %d %d %d\n", n, edgec_num_threads(), b.n, busy(&a, &b), runs);
  for (int i = 0; getenv("EDGEC_CHECKS_DEBUG") && i < b.n; ++i) printf("  tid %ld ticks +%ld start %d\n", b.tid[i], grew(&a, &b, i), in(&g_start, b.tid[i]));
  *bytes = edgec_output_bytes(m, 0);
  unsigned char* out = malloc(*bytes ? *bytes : 1);
  rc(m, "get_output", edgec_get_output(m, 0, out, *bytes));
  return out;
}

int main(int argc, char** argv) {
  char err[1024];
  g_start = snapshot();
  if (argc < 4) {
    printf("usage: c_api_error_checks model.so truncated/model.so garbage.so\n");
    return 1;
  }
  edgec_model* m = edgec_load("does/not/exist/model.so", err, sizeof err);
  line("load_missing", m ? 0 : -1, err);
  m = edgec_load(argv[3], err, sizeof err);
  line("load_garbage", m ? 0 : -1, err);
  m = edgec_load(argv[2], err, sizeof err);
  line("load_truncated", m ? 0 : -1, err);
  line("last_error_null", 0, edgec_last_error(NULL));
  m = edgec_load(NULL, err, sizeof err);
  line("load_null", m ? 0 : -1, err);
  rc(NULL, "threads_bad", edgec_set_num_threads(-3));

  m = edgec_load(argv[1], err, sizeof err);
  if (!m) {
    line("load", -1, err);
    return 1;
  }
  mapped("weights.bin");
  mapped("model.consts");
  int nin = edgec_num_inputs(m), nout = edgec_num_outputs(m);
  printf("counts %d %d\n", nin, nout);
  for (int i = 0; i < nin; ++i) {
    printf("input %d %s %s %d", i, edgec_input_name(m, i), edgec_input_dtype(m, i), edgec_input_ndim(m, i));
    for (int a = 0; a < edgec_input_ndim(m, i); ++a) printf(" %lld", (long long)edgec_input_shape(m, i)[a]);
    printf(" %zu\n", edgec_input_bytes(m, i));
  }
  printf("output0 %s %s %d\n", edgec_output_name(m, 0), edgec_output_dtype(m, 0), edgec_output_ndim(m, 0));
  printf("bad_index %s %d %d\n", edgec_input_name(m, nin) ? "name" : "NULL", edgec_input_ndim(m, -1),
         edgec_input_index(m, "no such input"));
  rc(m, "run_unset", edgec_run(m)); /* no input set yet: the wrong number of inputs */
  rc(m, "get_before_run", edgec_get_output(m, 0, err, sizeof err));

  int ndim = edgec_input_ndim(m, 0);
  int64_t shape[EDGEC_MAX_NDIM];
  memcpy(shape, edgec_input_shape(m, 0), sizeof(int64_t) * (size_t)ndim);
  shape[ndim - 1] += 1;
  rc(m, "wrong_shape", edgec_set_input_shape(m, 0, shape, ndim, NULL));
  rc(m, "wrong_rank", edgec_set_input_shape(m, 0, shape, ndim - 1, NULL));
  shape[ndim - 1] -= 1;
  rc(m, "wrong_dtype", edgec_set_input_shape(m, 0, shape, ndim,
                                             strcmp(edgec_input_dtype(m, 0), "float16") ? "float16" : "float32"));
  rc(m, "unknown_dtype", edgec_set_input_shape(m, 0, shape, ndim, "complex-ish"));
  rc(m, "same_shape", edgec_set_input_shape(m, 0, shape, ndim, NULL));
  rc(m, "wrong_bytes", edgec_set_input(m, 0, err, edgec_input_bytes(m, 0) - 1));
  rc(m, "wrong_index", edgec_set_input(m, nin, err, 4));
  rc(m, "null_data", edgec_set_input(m, 0, NULL, 4));

  fill_inputs(m);
  size_t b1, b2;
  double seconds = argc > 4 ? atof(argv[4]) : 0.5;
  unsigned char* y1 = run_with(m, 1, seconds, &b1);
  unsigned char* y2 = run_with(m, 2, seconds, &b2);
  printf("identical %s %zu\n", b1 == b2 && memcmp(y1, y2, b1) == 0 ? "yes" : "no", b1);
  free(y1);
  free(y2);
  rc(m, "small_buffer", edgec_get_output(m, 0, err, 1));
  /* more threads than the cores after the first run: the vm runtime's TVM pool cannot grow
   * (an error, the count unchanged), the plan runtime's pool can */
  rc(NULL, "threads_over", edgec_set_num_threads(64)); /* not about m: its message is NULL's */
  printf("threads_after_over %d\n", edgec_num_threads());
  rc(m, "run_after_over", edgec_run(m));
  edgec_free(m);
  printf("done\n");
  return 0;
}
