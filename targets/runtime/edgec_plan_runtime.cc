// edgec_plan_runtime.cc -- edgec_runtime.h without the TVM runtime (used for armv7).
//
// edgec_load("dir/model.so") dlopens the kernel library and reads "dir/model.plan" (text) and
// "dir/model.consts" (weights) written by edgec.targets.tvm.plan. edgec_run calls the kernels in
// plan order with the tvm-ffi packed calling convention (int f(void*, const TVMFFIAny*, int,
// TVMFFIAny*)), each argument a DLTensor*. This file provides the few symbols the kernels import
// from a TVM runtime: TVMFFIErrorSetRaisedFromCStr[Parts], workspace allocation and a serial
// parallel-launch. Only needs the tvm-ffi C headers (c_api.h, dlpack.h), not libtvm_ffi.
// Build: g++ -std=c++17 -fPIC -shared -I<tvm_ffi/include> edgec_plan_runtime.cc -ldl
#include <dlfcn.h>
#include <tvm/ffi/c_api.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgec_runtime.h"

namespace {
thread_local std::string g_kernel_error;  // set by kernels through the error hooks below
thread_local std::string g_last_error;
}  // namespace

extern "C" {
// tvm-ffi error hooks the kernels call on a failed argument check.
__attribute__((visibility("default"))) void TVMFFIErrorSetRaisedFromCStr(const char* kind,
                                                                       const char* message) {
  g_kernel_error = std::string(kind) + ": " + message;
}
__attribute__((visibility("default"))) void TVMFFIErrorSetRaisedFromCStrParts(
    const char* kind, const char** parts, int32_t num_parts) {
  g_kernel_error = std::string(kind) + ": ";
  for (int32_t i = 0; i < num_parts; ++i) g_kernel_error += parts[i] ? parts[i] : "";
}
}

namespace {

typedef int (*KernelFn)(void*, const TVMFFIAny*, int32_t, TVMFFIAny*);
typedef struct {
  void* sync_handle;
  int32_t num_task;
} ParallelEnv;
typedef int (*ParallelLambda)(int task_id, ParallelEnv* penv, void* cdata);

void* AllocWorkspace(int, int, uint64_t nbytes, int, int) {
  return std::aligned_alloc(64, (nbytes + 63) / 64 * 64 + 64);
}
int FreeWorkspace(int, int, void* ptr) {
  std::free(ptr);
  return 0;
}
int ParallelLaunch(ParallelLambda f, void* cdata, int num_task) {  // serial: one core
  ParallelEnv env{nullptr, 1};
  return f(0, &env, cdata);
}
int ParallelBarrier(int, ParallelEnv*) { return 0; }
int ModLookupUnsupported(void*, const char* name, void**) {
  g_kernel_error = std::string("RuntimeError: kernel calls packed function '") + name +
                   "', which needs the TVM runtime (not available with the call plan)";
  return -1;
}

struct PlanTensor {
  DLTensor dl{};
  std::vector<int64_t> shape;
  std::string dtype, kind;
  size_t bytes = 0;
  void* data = nullptr;
};

struct Call {
  std::string symbol;
  KernelFn fn = nullptr;
  std::vector<int> args;
};

bool ParseDType(const std::string& s, DLDataType* out) {
  static const struct { const char* prefix; uint8_t code; } kinds[] = {
      {"float", kDLFloat}, {"bfloat", kDLBfloat}, {"uint", kDLUInt}, {"int", kDLInt}};
  if (s == "bool") {
    *out = DLDataType{kDLBool, 8, 1};
    return true;
  }
  for (auto& k : kinds) {
    size_t n = std::strlen(k.prefix);
    if (s.compare(0, n, k.prefix) == 0 && s.size() > n && std::isdigit(static_cast<unsigned char>(s[n]))) {
      *out = DLDataType{k.code, static_cast<uint8_t>(std::atoi(s.c_str() + n)), 1};
      return true;
    }
  }
  return false;
}

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else if (s[i] != '%') {
      out += s[i];
    }
  }
  return out;
}

std::string Stem(const std::string& path) {
  size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  return (dot == std::string::npos || (slash != std::string::npos && dot < slash)) ? path
                                                                                  : path.substr(0, dot);
}

void Expect(std::istream& in, const std::string& word) {
  std::string w;
  if (!(in >> w) || w != word) throw std::runtime_error("plan: expected '" + word + "', got '" + w + "'");
}

}  // namespace

struct edgec_model {
  void* dl = nullptr;
  std::vector<PlanTensor> tensors;
  std::vector<std::pair<int, std::string>> inputs, outputs;
  std::vector<Call> calls;
  std::vector<bool> input_set;
  bool ran = false;
  mutable std::string error;
  ~edgec_model() {
    for (auto& t : tensors) std::free(t.data);
    if (dl) dlclose(dl);
  }
};

namespace {

int Fail(const edgec_model* m, int code, const std::string& msg) {
  if (m) m->error = msg;
  g_last_error = msg;
  return code;
}

void SetContextSymbol(void* dl, const char* name, void* value) {
  if (void** addr = reinterpret_cast<void**>(dlsym(dl, name))) *addr = value;
}

void LoadPlan(edgec_model* m, const std::string& lib_path) {
  std::string stem = Stem(lib_path);
  std::ifstream in(stem + ".plan");
  if (!in) throw std::runtime_error("cannot read plan '" + stem + ".plan'");
  std::ifstream cf(stem + ".consts", std::ios::binary);
  if (!cf) throw std::runtime_error("cannot read constants '" + stem + ".consts'");
  std::stringstream cs;
  cs << cf.rdbuf();
  std::string consts = cs.str();
  int version = 0, n = 0;
  Expect(in, "edgec-plan");
  in >> version;
  if (version != 1) throw std::runtime_error("unsupported plan version " + std::to_string(version));
  Expect(in, "tensors");
  in >> n;
  m->tensors.resize(n);
  for (int i = 0; i < n; ++i) {
    PlanTensor& t = m->tensors[i];
    int id = -1, ndim = 0;
    in >> id >> t.dtype >> ndim;
    if (id != i || ndim < 0 || ndim > EDGEC_MAX_NDIM) throw std::runtime_error("plan: bad tensor line");
    t.shape.resize(ndim);
    int64_t numel = 1;
    for (auto& d : t.shape) numel *= (in >> d, d);
    in >> t.kind;
    if (!ParseDType(t.dtype, &t.dl.dtype)) throw std::runtime_error("plan: bad dtype " + t.dtype);
    t.bytes = static_cast<size_t>((numel * t.dl.dtype.bits + 7) / 8);
    t.data = std::aligned_alloc(64, (t.bytes + 63) / 64 * 64 + 64);
    if (!t.data) throw std::bad_alloc();
    if (t.kind == "const") {
      size_t off = 0, nbytes = 0;
      in >> off >> nbytes;
      if (nbytes != t.bytes || off + nbytes > consts.size())
        throw std::runtime_error("plan: constant " + std::to_string(i) + " outside the .consts file");
      std::memcpy(t.data, consts.data() + off, nbytes);
    } else if (t.kind == "input") {
      int idx;
      in >> idx;
    } else if (t.kind != "temp") {
      throw std::runtime_error("plan: bad tensor kind " + t.kind);
    }
    t.dl.data = t.data;
    t.dl.device = DLDevice{kDLCPU, 0};
    t.dl.ndim = ndim;
    t.dl.shape = t.shape.data();
    t.dl.strides = nullptr;
    t.dl.byte_offset = 0;
  }
  for (auto* list : {&m->inputs, &m->outputs}) {
    Expect(in, list == &m->inputs ? "inputs" : "outputs");
    in >> n;
    for (int i = 0; i < n; ++i) {
      int tid;
      std::string name;
      in >> tid >> name;
      if (tid < 0 || tid >= static_cast<int>(m->tensors.size())) throw std::runtime_error("plan: bad io");
      list->emplace_back(tid, Unescape(name));
    }
  }
  Expect(in, "calls");
  in >> n;
  for (int i = 0; i < n; ++i) {
    Call c;
    int nargs = 0;
    in >> c.symbol >> nargs;
    for (int k = 0; k < nargs; ++k) {
      int tid;
      in >> tid;
      if (tid < 0 || tid >= static_cast<int>(m->tensors.size())) throw std::runtime_error("plan: bad arg");
      c.args.push_back(tid);
    }
    c.fn = reinterpret_cast<KernelFn>(dlsym(m->dl, c.symbol.c_str()));
    if (!c.fn) throw std::runtime_error("kernel '" + c.symbol + "' not found in " + lib_path);
    m->calls.push_back(std::move(c));
  }
  if (!in) throw std::runtime_error("plan: truncated or malformed");
  m->input_set.assign(m->inputs.size(), false);
}

const PlanTensor* Info(const edgec_model* m, bool input, int idx) {
  if (!m) return nullptr;
  const auto& v = input ? m->inputs : m->outputs;
  if (idx < 0 || static_cast<size_t>(idx) >= v.size()) {
    Fail(m, EDGEC_ERR_INDEX, std::string(input ? "input" : "output") + " index " +
                                 std::to_string(idx) + " out of range");
    return nullptr;
  }
  return &m->tensors[v[idx].first];
}

}  // namespace

extern "C" {

edgec_model* edgec_load_with_metadata(const char* lib_path, const char*, char* err, size_t errlen) {
  auto m = std::make_unique<edgec_model>();
  try {
    if (!lib_path) throw std::runtime_error("lib_path is NULL");
    std::string path = lib_path;  // dlopen searches the library path for a name without '/'
    if (path.find('/') == std::string::npos) path = "./" + path;
    m->dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) throw std::runtime_error(dlerror());
    SetContextSymbol(m->dl, "__TVMBackendAllocWorkspace", reinterpret_cast<void*>(&AllocWorkspace));
    SetContextSymbol(m->dl, "__TVMBackendFreeWorkspace", reinterpret_cast<void*>(&FreeWorkspace));
    SetContextSymbol(m->dl, "__TVMBackendParallelLaunch", reinterpret_cast<void*>(&ParallelLaunch));
    SetContextSymbol(m->dl, "__TVMBackendParallelBarrier", reinterpret_cast<void*>(&ParallelBarrier));
    SetContextSymbol(m->dl, "__TVMFFIErrorSetRaisedFromCStr",
                     reinterpret_cast<void*>(&TVMFFIErrorSetRaisedFromCStr));
    SetContextSymbol(m->dl, "__TVMFFIEnvModLookupFromImports",
                     reinterpret_cast<void*>(&ModLookupUnsupported));
    LoadPlan(m.get(), lib_path);
  } catch (const std::exception& e) {
    Fail(nullptr, EDGEC_ERR_LOAD, std::string("edgec_load(") + (lib_path ? lib_path : "") + "): " + e.what());
    if (err && errlen) {
      std::strncpy(err, g_last_error.c_str(), errlen - 1);
      err[errlen - 1] = '\0';
    }
    return nullptr;
  }
  return m.release();
}

edgec_model* edgec_load(const char* lib_path, char* err, size_t errlen) {
  return edgec_load_with_metadata(lib_path, nullptr, err, errlen);
}
void edgec_free(edgec_model* m) { delete m; }
const char* edgec_last_error(const edgec_model* m) { return m ? m->error.c_str() : g_last_error.c_str(); }
int edgec_num_inputs(const edgec_model* m) { return m ? static_cast<int>(m->inputs.size()) : EDGEC_ERR_ARG; }
int edgec_num_outputs(const edgec_model* m) { return m ? static_cast<int>(m->outputs.size()) : EDGEC_ERR_ARG; }

static int FindName(const std::vector<std::pair<int, std::string>>& v, const char* name) {
  for (size_t i = 0; name && i < v.size(); ++i)
    if (v[i].second == name) return static_cast<int>(i);
  return EDGEC_ERR_INDEX;
}
int edgec_input_index(const edgec_model* m, const char* n) { return m ? FindName(m->inputs, n) : EDGEC_ERR_ARG; }
int edgec_output_index(const edgec_model* m, const char* n) { return m ? FindName(m->outputs, n) : EDGEC_ERR_ARG; }

#define EDGEC_QUERIES(kind, is_input, list)                                                          \
  const char* edgec_##kind##_name(const edgec_model* m, int i) {                                    \
    return Info(m, is_input, i) ? m->list[i].second.c_str() : nullptr;                              \
  }                                                                                                 \
  const char* edgec_##kind##_dtype(const edgec_model* m, int i) {                                   \
    auto* t = Info(m, is_input, i);                                                                 \
    return t ? t->dtype.c_str() : nullptr;                                                          \
  }                                                                                                 \
  int edgec_##kind##_ndim(const edgec_model* m, int i) {                                            \
    auto* t = Info(m, is_input, i);                                                                 \
    return t ? static_cast<int>(t->shape.size()) : EDGEC_ERR_INDEX;                                 \
  }                                                                                                 \
  const int64_t* edgec_##kind##_shape(const edgec_model* m, int i) {                                \
    auto* t = Info(m, is_input, i);                                                                 \
    return t ? t->shape.data() : nullptr;                                                           \
  }                                                                                                 \
  size_t edgec_##kind##_bytes(const edgec_model* m, int i) {                                        \
    auto* t = Info(m, is_input, i);                                                                 \
    return t ? t->bytes : 0;                                                                        \
  }
EDGEC_QUERIES(input, true, inputs)
EDGEC_QUERIES(output, false, outputs)

// A call plan has static shapes: the declared shape is the shape, no dim is symbolic.
#define EDGEC_DECLARED(kind)                                                                         \
  int edgec_##kind##_declared_ndim(const edgec_model* m, int i) { return edgec_##kind##_ndim(m, i); } \
  const int64_t* edgec_##kind##_declared_shape(const edgec_model* m, int i) {                       \
    return edgec_##kind##_shape(m, i);                                                              \
  }                                                                                                 \
  const char* edgec_##kind##_dim_name(const edgec_model* m, int i, int) {                           \
    edgec_##kind##_ndim(m, i); /* records a bad index */                                            \
    return nullptr;                                                                                 \
  }
EDGEC_DECLARED(input)
EDGEC_DECLARED(output)

int edgec_set_input_shape(edgec_model* m, int idx, const int64_t* shape, int ndim, const char* dtype) {
  auto* t = Info(m, true, idx);
  if (!t) return m ? EDGEC_ERR_INDEX : EDGEC_ERR_ARG;
  bool same = ndim == static_cast<int>(t->shape.size()) && (!dtype || t->dtype == dtype) &&
              (ndim == 0 || (shape && std::memcmp(shape, t->shape.data(), ndim * sizeof(int64_t)) == 0));
  return same ? EDGEC_OK : Fail(m, EDGEC_ERR_SHAPE, "call-plan models have fixed input shapes");
}

int edgec_set_input_from_output(edgec_model* m, int in_idx, int out_idx) {
  auto* in = Info(m, true, in_idx);
  auto* out = Info(m, false, out_idx);
  if (!in || !out) return m ? EDGEC_ERR_INDEX : EDGEC_ERR_ARG;
  if (!m->ran) return Fail(m, EDGEC_ERR_STATE, "edgec_set_input_from_output: call edgec_run first");
  if (in->shape != out->shape || in->dtype != out->dtype)
    return Fail(m, EDGEC_ERR_SHAPE, "edgec_set_input_from_output: output '" + m->outputs[out_idx].second +
                                        "' does not fit input '" + m->inputs[in_idx].second +
                                        "' (call-plan models have fixed shapes)");
  if (in != out) std::memcpy(in->data, out->data, in->bytes);  // plan tensors are preallocated
  m->input_set[in_idx] = true;
  return EDGEC_OK;
}

const void* edgec_output_data(const edgec_model* m, int idx) {
  auto* t = Info(m, false, idx);
  if (!t) return nullptr;
  if (!m->ran) {
    Fail(m, EDGEC_ERR_STATE, "edgec_output_data: call edgec_run first");
    return nullptr;
  }
  return t->data;
}

int edgec_set_input(edgec_model* m, int idx, const void* data, size_t bytes) {
  if (!m || (!data && bytes)) return Fail(m, EDGEC_ERR_ARG, "edgec_set_input: NULL argument");
  auto* t = Info(m, true, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (bytes != t->bytes)
    return Fail(m, EDGEC_ERR_SIZE, "input '" + m->inputs[idx].second + "' needs " +
                                       std::to_string(t->bytes) + " bytes, got " + std::to_string(bytes));
  if (bytes) std::memcpy(t->data, data, bytes);
  m->input_set[idx] = true;
  return EDGEC_OK;
}

int edgec_run(edgec_model* m) {
  if (!m) return Fail(m, EDGEC_ERR_ARG, "edgec_run: NULL model");
  for (size_t i = 0; i < m->inputs.size(); ++i)
    if (!m->input_set[i]) return Fail(m, EDGEC_ERR_STATE, "input '" + m->inputs[i].second + "' was not set");
  std::vector<TVMFFIAny> args;
  for (const Call& c : m->calls) {
    args.assign(c.args.size(), TVMFFIAny{});
    for (size_t k = 0; k < c.args.size(); ++k) {
      args[k].type_index = kTVMFFIDLTensorPtr;
      args[k].v_ptr = &m->tensors[c.args[k]].dl;
    }
    TVMFFIAny ret{};
    ret.type_index = kTVMFFINone;
    g_kernel_error.clear();
    if (c.fn(nullptr, args.data(), static_cast<int32_t>(args.size()), &ret) != 0)
      return Fail(m, EDGEC_ERR_RUN, "edgec_run: kernel " + c.symbol + " failed: " +
                                        (g_kernel_error.empty() ? "unknown error" : g_kernel_error));
  }
  m->ran = true;
  return EDGEC_OK;
}

int edgec_get_output(const edgec_model* m, int idx, void* dst, size_t bytes) {
  if (!m || !dst) return Fail(m, EDGEC_ERR_ARG, "edgec_get_output: NULL argument");
  auto* t = Info(m, false, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (!m->ran) return Fail(m, EDGEC_ERR_STATE, "edgec_get_output: call edgec_run first");
  if (bytes < t->bytes) return Fail(m, EDGEC_ERR_SIZE, "edgec_get_output: buffer too small");
  std::memcpy(dst, t->data, t->bytes);
  return EDGEC_OK;
}

}  // extern "C"
