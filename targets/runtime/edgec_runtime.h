/*
 * edgec_runtime.h -- a small C API to run a model compiled by edgec (TVM Relax VM library).
 *
 * Usage:
 *   char err[256];
 *   edgec_set_num_threads(2);                                          // optional
 *   edgec_model* m = edgec_load("bundle/model.so", err, sizeof err);   // NULL on failure
 *   if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *   edgec_set_input(m, 0, x, edgec_input_bytes(m, 0));
 *   if (edgec_run(m) != EDGEC_OK) fprintf(stderr, "%s\n", edgec_last_error(m));
 *   edgec_get_output(m, 0, y, edgec_output_bytes(m, 0));
 *   edgec_free(m);
 *
 * Input/output names, shapes and dtypes come from `metadata.json` next to the library
 * (format: {"inputs": [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}, ...],
 *           "outputs": [...]}), or from the file given to edgec_load_with_metadata().
 * Without metadata, input count and names come from the library and every input's shape must be
 * declared with edgec_set_input_shape() before edgec_set_input().
 * Output shapes are re-read from the results after every edgec_run().
 *
 * Symbolic dims (a model compiled with --symbolic-dims; metadata names the dim, e.g.
 * ["batch", 4, "past_sequence_length", 8]): set each such input's shape per call with
 * edgec_set_input_shape() (checked against the declared rank, fixed dims and dtype; a zero-length
 * dim is fine: data may then be NULL with 0 bytes); inputs naming the same dim must agree at
 * edgec_run(), and stay within the metadata's "dim_bounds" (compiled with --dim NAME=LO..HI). edgec_input_declared_shape() / edgec_input_dim_name() tell which dims are symbolic.
 * A decode loop (KV cache) feeds each step's outputs back as the next step's inputs with
 * edgec_set_input_from_output() (no copy) and reads the logits in place with edgec_output_data().
 * The bundle's edgec-generate (edgec_generate_main.c) is a complete example.
 * Call-plan bundles (armv7, edgec_plan_runtime.cc) have static shapes only: the same calls exist,
 * edgec_set_input_shape accepts the compiled shape, edgec_set_input_from_output copies.
 *
 * All functions returning int return EDGEC_OK (0) or a negative edgec_status; the message is in
 * edgec_last_error(m). No call aborts or exits the process: a missing or malformed file, a short
 * weights.bin, a wrong shape, dtype or byte count, an unset input and an error raised inside the
 * model all come back as codes. A model handle is not thread-safe: use one handle per thread.
 *
 * Threads: edgec_set_num_threads(n) sizes the pool that runs the models' parallel loops, for the
 * whole process (both runtimes: TVM's pool, or the call plan's own); default TVM_NUM_THREADS or
 * OMP_NUM_THREADS when set, else the physical cores the process may run on (as edgec's Python
 * runtime). Results do not depend on it.
 *
 * weights.bin (artifacts compiled with --weights-file) is mapped, not read: MAP_PRIVATE over a
 * read-only file descriptor, as edgec's Python runtime maps it; call-plan bundles map model.consts
 * the same way.
 * Link: -ledgec_runtime (the vm runtime needs libtvm_runtime.so and libtvm_ffi.so next to it).
 * Both runtimes implement these queries once (edgec_query.cc, shared).
 */
#ifndef EDGEC_RUNTIME_H_
#define EDGEC_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEC_RUNTIME_VERSION "0.3.0"
#define EDGEC_MAX_NDIM 8

typedef enum edgec_status {
  EDGEC_OK = 0,
  EDGEC_ERR_LOAD = -1,      /* library or metadata missing/unreadable/malformed */
  EDGEC_ERR_INDEX = -2,     /* input/output index out of range */
  EDGEC_ERR_SIZE = -3,      /* byte count does not match shape x dtype */
  EDGEC_ERR_RUN = -4,       /* the model raised an error while running */
  EDGEC_ERR_STATE = -5,     /* e.g. output requested before edgec_run(), input not set */
  EDGEC_ERR_ARG = -6,       /* NULL pointer or bad argument */
  EDGEC_ERR_SHAPE = -7      /* shape/dtype differs from the declared one, inputs sharing a
                               symbolic dim disagree, or a dim is outside its --dim bounds */
} edgec_status;

typedef struct edgec_model edgec_model;

/* Load `lib_path` and `metadata.json` from the same directory (if present). NULL on failure,
 * with the message copied into err (if err != NULL). */
edgec_model* edgec_load(const char* lib_path, char* err, size_t errlen);
/* Same, with an explicit metadata file (NULL: no metadata). */
edgec_model* edgec_load_with_metadata(const char* lib_path, const char* metadata_path, char* err,
                                      size_t errlen);
void edgec_free(edgec_model* m);

/* Message of the last failed call on m (m may be NULL: last failure of this thread). */
const char* edgec_last_error(const edgec_model* m);

/* Threads for the models' parallel loops, process-wide, applied from the next edgec_run (call it
 * before edgec_load or between runs). n >= 1, or 0 for the default (see above). EDGEC_OK, or
 * EDGEC_ERR_ARG for n outside 0..1024. */
int edgec_set_num_threads(int n);
/* The thread count runs use now (edgec_set_num_threads' value or the default). */
int edgec_num_threads(void);

int edgec_num_inputs(const edgec_model* m);
int edgec_num_outputs(const edgec_model* m);
/* Index of the input/output called `name`, or EDGEC_ERR_INDEX. */
int edgec_input_index(const edgec_model* m, const char* name);
int edgec_output_index(const edgec_model* m, const char* name);

/* Metadata queries; NULL / negative on a bad index. Shapes point into the handle (valid until the
 * next edgec_run / edgec_set_input_shape / edgec_free). Dtypes are numpy names ("float32"). */
const char* edgec_input_name(const edgec_model* m, int idx);
const char* edgec_input_dtype(const edgec_model* m, int idx);
int edgec_input_ndim(const edgec_model* m, int idx);
const int64_t* edgec_input_shape(const edgec_model* m, int idx);
size_t edgec_input_bytes(const edgec_model* m, int idx);
const char* edgec_output_name(const edgec_model* m, int idx);
const char* edgec_output_dtype(const edgec_model* m, int idx);
int edgec_output_ndim(const edgec_model* m, int idx);
const int64_t* edgec_output_shape(const edgec_model* m, int idx);
size_t edgec_output_bytes(const edgec_model* m, int idx);

/* The shape as declared by the metadata: ndim (-1 without metadata), dims with -1 where the dim
 * is symbolic, and that dim's name ("batch", or an expression for outputs such as
 * "past_sequence_length + sequence_length"; NULL for a fixed dim or a bad index/axis). */
int edgec_input_declared_ndim(const edgec_model* m, int idx);
const int64_t* edgec_input_declared_shape(const edgec_model* m, int idx);
const char* edgec_input_dim_name(const edgec_model* m, int idx, int axis);
int edgec_output_declared_ndim(const edgec_model* m, int idx);
const int64_t* edgec_output_declared_shape(const edgec_model* m, int idx);
const char* edgec_output_dim_name(const edgec_model* m, int idx, int axis);

/* Set (or change) an input's shape and dtype (dtype NULL: keep it). Needed without metadata and
 * for symbolic dims; with metadata, rank, fixed dims and dtype must match (EDGEC_ERR_SHAPE).
 * The input's buffer is kept when the shape does not change. */
int edgec_set_input_shape(edgec_model* m, int idx, const int64_t* shape, int ndim,
                          const char* dtype);
/* Copy `bytes` bytes (must equal edgec_input_bytes) of dense row-major data into input idx.
 * data may be NULL when bytes is 0 (a zero-length dim, e.g. an empty KV cache). */
int edgec_set_input(edgec_model* m, int idx, const void* data, size_t bytes);
/* Use output out_idx of the last edgec_run as input in_idx (shape and data; the tensor is shared,
 * not copied: e.g. present.0.key -> past_key_values.0.key between decode steps). Checked like
 * edgec_set_input_shape. A later edgec_set_input on in_idx writes to a fresh buffer. */
int edgec_set_input_from_output(edgec_model* m, int in_idx, int out_idx);
/* Run the model on the current inputs. */
int edgec_run(edgec_model* m);
/* Copy output idx (after edgec_run) into dst; bytes must be >= edgec_output_bytes. */
int edgec_get_output(const edgec_model* m, int idx, void* dst, size_t bytes);
/* Read-only pointer to output idx's dense data (edgec_output_bytes long), valid until the next
 * edgec_run or edgec_free; NULL before the first run or on a bad index. */
const void* edgec_output_data(const edgec_model* m, int idx);

#ifdef __cplusplus
}
#endif
#endif /* EDGEC_RUNTIME_H_ */
