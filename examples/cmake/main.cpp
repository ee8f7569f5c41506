// Runs a model compiled by edgec (edgec_add_model in CMakeLists.txt) through the C API on a
// deterministic input and prints every output value, one line per output:
//
//   output 0 'logits' float32 [1,10]: -0.123 0.456 ...
//
// Input element i of every float32 input is ((i * 37) % 101) / 50 - 1 (exact in float32, so a
// test can build the same input with numpy). Usage: edgec_app [model.so]; the default is the
// bundle built by CMake (the compile definition EDGEC_MODEL_CNN_SO).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "edgec_runtime.h"
#include "model.h"  // the artifact's I/O as macros: EDGEC_MODEL_NUM_INPUTS, ..._SHAPE

static std::string shape_text(int ndim, const int64_t* shape) {
  std::string s = "[";
  for (int d = 0; d < ndim; ++d) s += (d ? "," : "") + std::to_string(shape[d]);
  return s + "]";
}

int main(int argc, char** argv) {
  const char* lib = argc > 1 ? argv[1] : EDGEC_MODEL_CNN_SO;
  char err[512];
  edgec_model* m = edgec_load(lib, err, sizeof err);
  if (!m) {
    std::fprintf(stderr, "edgec_app: %s\n", err);
    return 2;
  }
  if (edgec_num_inputs(m) != EDGEC_MODEL_NUM_INPUTS || edgec_num_outputs(m) != EDGEC_MODEL_NUM_OUTPUTS) {
    std::fprintf(stderr, "edgec_app: %s does not match model.h (%d inputs, %d outputs)\n", lib,
                 EDGEC_MODEL_NUM_INPUTS, EDGEC_MODEL_NUM_OUTPUTS);
    edgec_free(m);
    return 2;
  }
  int rc = 0;
  for (int i = 0; i < edgec_num_inputs(m) && rc == 0; ++i) {
    if (std::strcmp(edgec_input_dtype(m, i), "float32") != 0) {
      std::fprintf(stderr, "edgec_app: input '%s' is %s; this example feeds float32 only\n",
                   edgec_input_name(m, i), edgec_input_dtype(m, i));
      rc = 2;
      break;
    }
    std::vector<float> x(edgec_input_bytes(m, i) / sizeof(float));
    for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>((k * 37) % 101) / 50.0f - 1.0f;
    rc = edgec_set_input(m, i, x.data(), x.size() * sizeof(float));
  }
  if (rc == 0) rc = edgec_run(m);
  for (int o = 0; o < edgec_num_outputs(m) && rc == 0; ++o) {
    if (std::strcmp(edgec_output_dtype(m, o), "float32") != 0) {
      std::printf("output %d '%s' %s %s: (not printed)\n", o, edgec_output_name(m, o), edgec_output_dtype(m, o),
                  shape_text(edgec_output_ndim(m, o), edgec_output_shape(m, o)).c_str());
      continue;
    }
    std::vector<float> y(edgec_output_bytes(m, o) / sizeof(float));
    rc = edgec_get_output(m, o, y.data(), y.size() * sizeof(float));
    if (rc != 0) break;
    std::printf("output %d '%s' float32 %s:", o, edgec_output_name(m, o),
                shape_text(edgec_output_ndim(m, o), edgec_output_shape(m, o)).c_str());
    for (float v : y) std::printf(" %.9g", v);
    std::printf("\n");
  }
  if (rc != 0 && rc != 2) std::fprintf(stderr, "edgec_app: %s\n", edgec_last_error(m));
  edgec_free(m);
  return rc == 0 ? 0 : 2;
}
