// edgec_query.cc -- the part of edgec_runtime.h both C runtimes share (see edgec_query.h): the
// queries over a model's inputs and outputs, errors and the thread count. Compiled into each
// runtime's libedgec_runtime.so beside edgec_runtime.cc or edgec_plan_runtime.cc.
#include "edgec_query.h"

#include <sched.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

namespace edgec {

namespace {
std::atomic<int> g_threads{0};  // 0: not set by edgec_set_num_threads

int PositiveEnv(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return *end == '\0' && n > 0 && n < 4096 ? static_cast<int>(n) : 0;
}
}  // namespace

TensorInfo FixedInfo(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape) {
  TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  t.known = t.declared = true;
  t.declared_shape = shape;
  t.dim_names.assign(shape.size(), std::string());
  return t;
}

int DTypeBits(const std::string& s) {
  if (s == "bool") return 8;
  for (const char* prefix : {"bfloat", "float", "uint", "int"}) {
    size_t n = std::strlen(prefix);
    if (s.compare(0, n, prefix) == 0 && s.size() > n && std::isdigit(static_cast<unsigned char>(s[n])))
      return std::atoi(s.c_str() + n);
  }
  return 0;
}

size_t NumBytes(const TensorInfo& t) {
  if (!t.known) return 0;
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return static_cast<size_t>((n * DTypeBits(t.dtype) + 7) / 8);
}

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

static std::string DeclaredText(const TensorInfo& t) {
  std::string r = "[";
  for (size_t i = 0; i < t.declared_shape.size(); ++i)
    r += (i ? ", " : "") + (t.dim_names[i].empty() ? std::to_string(t.declared_shape[i]) : t.dim_names[i]);
  return r + "]";
}

std::string ShapeMismatch(const TensorInfo& t, const std::vector<int64_t>& shape, const std::string& dtype) {
  for (int64_t d : shape)
    if (d < 0) return "negative dim in " + ShapeText(shape);
  if (!t.declared) return "";
  bool ok = shape.size() == t.declared_shape.size() && dtype == t.dtype;
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = t.declared_shape[i] < 0 || t.declared_shape[i] == shape[i];
  if (ok) return "";
  return "declared " + t.dtype + DeclaredText(t) + ", got " + dtype + ShapeText(shape);
}

std::string& LastError() {
  thread_local std::string last;
  return last;
}

int Fail(const ModelIO* m, int code, const std::string& msg) {
  if (m) m->error = msg;
  LastError() = msg;
  return code;
}

void CopyErr(char* err, size_t errlen, const std::string& msg) {
  if (err && errlen) {
    std::strncpy(err, msg.c_str(), errlen - 1);
    err[errlen - 1] = '\0';
  }
}

const TensorInfo* Info(const ModelIO* m, bool input, int idx) {
  if (!m) {
    Fail(nullptr, EDGEC_ERR_ARG, "NULL model");
    return nullptr;
  }
  const auto& v = input ? m->inputs : m->outputs;
  if (idx < 0 || static_cast<size_t>(idx) >= v.size()) {
    Fail(m, EDGEC_ERR_INDEX, (input ? "input" : "output") + std::string(" index ") + std::to_string(idx) +
                                 " out of range [0, " + std::to_string(v.size()) + ")");
    return nullptr;
  }
  return &v[idx];
}

int CpuCount() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) == 0) {
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
  }
  std::set<std::string> cores;  // CPUs sharing a physical core (hyper-threads) list the same siblings
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/thread_siblings_list");
    std::string siblings;
    cores.insert(f && std::getline(f, siblings) ? siblings : "cpu" + std::to_string(c));
  }
  return static_cast<int>(cores.size());
}

namespace {
// The default, read once when the library is loaded (the vm runtime sets TVM_NUM_THREADS itself
// later, for TVM's pool): TVM_NUM_THREADS, else OMP_NUM_THREADS, else the physical cores this
// process may run on -- as edgec's Python runtime (targets/tvm/runtime.py, default_threads).
int DefaultThreads() {
  if (int n = PositiveEnv("TVM_NUM_THREADS")) return n;
  if (int n = PositiveEnv("OMP_NUM_THREADS")) return n;
  return CpuCount();
}
const int g_default_threads = DefaultThreads();
}  // namespace

int NumThreads() {
  int n = g_threads.load();
  return n ? n : g_default_threads;
}

}  // namespace edgec

using edgec::AsIO;
using edgec::Info;
using edgec::TensorInfo;

extern "C" {

const char* edgec_last_error(const edgec_model* m) {
  return m ? AsIO(m)->error.c_str() : edgec::LastError().c_str();
}

int edgec_set_num_threads(int n) {
  if (n < 0 || n > 1024)
    return edgec::Fail(nullptr, EDGEC_ERR_ARG, "edgec_set_num_threads: " + std::to_string(n) +
                                                   " threads (expected 0..1024; 0: the default)");
  int old = edgec::g_threads.exchange(n);
  int rc = edgec::ApplyThreads(edgec::NumThreads());
  if (rc != EDGEC_OK) edgec::g_threads.store(old);
  return rc;
}

int edgec_num_threads(void) { return edgec::NumThreads(); }

int edgec_num_inputs(const edgec_model* m) { return m ? static_cast<int>(AsIO(m)->inputs.size()) : EDGEC_ERR_ARG; }
int edgec_num_outputs(const edgec_model* m) { return m ? static_cast<int>(AsIO(m)->outputs.size()) : EDGEC_ERR_ARG; }

static int FindName(const std::vector<TensorInfo>& v, const char* name) {
  for (size_t i = 0; name && i < v.size(); ++i)
    if (v[i].name == name) return static_cast<int>(i);
  return EDGEC_ERR_INDEX;
}
int edgec_input_index(const edgec_model* m, const char* name) {
  return m ? FindName(AsIO(m)->inputs, name) : EDGEC_ERR_ARG;
}
int edgec_output_index(const edgec_model* m, const char* name) {
  return m ? FindName(AsIO(m)->outputs, name) : EDGEC_ERR_ARG;
}

#define EDGEC_QUERIES(kind, is_input)                                                             \
  const char* edgec_##kind##_name(const edgec_model* m, int i) {                                  \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return t ? t->name.c_str() : nullptr;                                                         \
  }                                                                                               \
  const char* edgec_##kind##_dtype(const edgec_model* m, int i) {                                 \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return t ? t->dtype.c_str() : nullptr;                                                        \
  }                                                                                               \
  int edgec_##kind##_ndim(const edgec_model* m, int i) {                                          \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return !t ? EDGEC_ERR_INDEX : t->known ? static_cast<int>(t->shape.size()) : -1;              \
  }                                                                                               \
  const int64_t* edgec_##kind##_shape(const edgec_model* m, int i) {                              \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return t && t->known ? t->shape.data() : nullptr;                                             \
  }                                                                                               \
  size_t edgec_##kind##_bytes(const edgec_model* m, int i) {                                      \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return t ? edgec::NumBytes(*t) : 0;                                                           \
  }                                                                                               \
  int edgec_##kind##_declared_ndim(const edgec_model* m, int i) {                                 \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return !t ? EDGEC_ERR_INDEX : t->declared ? static_cast<int>(t->declared_shape.size()) : -1;  \
  }                                                                                               \
  const int64_t* edgec_##kind##_declared_shape(const edgec_model* m, int i) {                     \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    return t && t->declared ? t->declared_shape.data() : nullptr;                                 \
  }                                                                                               \
  const char* edgec_##kind##_dim_name(const edgec_model* m, int i, int axis) {                    \
    auto* t = m ? Info(AsIO(m), is_input, i) : nullptr;                                           \
    if (!t || !t->declared || axis < 0 || static_cast<size_t>(axis) >= t->dim_names.size())       \
      return nullptr;                                                                             \
    return t->dim_names[axis].empty() ? nullptr : t->dim_names[axis].c_str();                     \
  }
EDGEC_QUERIES(input, true)
EDGEC_QUERIES(output, false)

}  // extern "C"
