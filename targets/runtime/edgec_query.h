// edgec_query.h -- internal to the two C runtimes (not installed): what edgec_runtime.cc (TVM
// Relax VM) and edgec_plan_runtime.cc (call plan, armv7) share. Each runtime's `edgec_model`
// derives from edgec::ModelIO (the inputs' and outputs' names, dtypes, shapes and the last error)
// and defines edgec::AsIO() and edgec::ApplyThreads(); edgec_query.cc implements the query calls
// of edgec_runtime.h (counts, names, shapes, dtypes, bytes, declared shapes, errors, threads)
// once, over ModelIO.
#ifndef EDGEC_QUERY_H_
#define EDGEC_QUERY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "edgec_runtime.h"

namespace edgec {

struct TensorInfo {
  std::string name;
  std::string dtype = "float32";
  std::vector<int64_t> shape;
  bool known = false;                   // shape declared (metadata, set_input_shape or a run)
  bool declared = false;                // metadata gave a shape (possibly with named dims)
  std::vector<int64_t> declared_shape;  // -1 where the metadata names the dim
  std::vector<std::string> dim_names;   // "" for a fixed dim
};

// A fixed, fully known shape (a call plan's tensors): declared, with no named dim.
TensorInfo FixedInfo(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape);

struct ModelIO {
  std::vector<TensorInfo> inputs, outputs;
  mutable std::string error;
};

// Bits of one element of a numpy dtype name ("float32" -> 32, "bool" -> 8); 0 if unknown.
int DTypeBits(const std::string& dtype);
// Bytes of t's data (0 while its shape is unknown).
size_t NumBytes(const TensorInfo& t);
std::string ShapeText(const std::vector<int64_t>& s);
// Empty if `shape` and `dtype` fit t's declaration (rank, fixed dims, dtype), else why not.
std::string ShapeMismatch(const TensorInfo& t, const std::vector<int64_t>& shape, const std::string& dtype);

// Record `msg` as m's (if m) and this thread's last error; returns `code`.
int Fail(const ModelIO* m, int code, const std::string& msg);
// This thread's last error (edgec_last_error(NULL)).
std::string& LastError();
// Copy `msg` into a caller's error buffer (edgec_load's err, errlen).
void CopyErr(char* err, size_t errlen, const std::string& msg);
// Input or output idx of m; NULL (and EDGEC_ERR_INDEX recorded) when out of range.
const TensorInfo* Info(const ModelIO* m, bool input, int idx);

// The thread count runs use: edgec_set_num_threads' value, else TVM_NUM_THREADS or
// OMP_NUM_THREADS if set when the library was loaded, else CpuCount().
int NumThreads();
// The physical cores this process may run on (sched_getaffinity; hyper-threads of one core count
// once), at least 1.
int CpuCount();

// Defined by each runtime.
const ModelIO* AsIO(const edgec_model* m);
// Resize the runtime's worker pool to n threads; EDGEC_OK or a code after Fail().
int ApplyThreads(int n);

}  // namespace edgec

#endif  // EDGEC_QUERY_H_
