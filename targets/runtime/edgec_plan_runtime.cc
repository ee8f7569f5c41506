// edgec_plan_runtime.cc -- edgec_runtime.h without the TVM runtime (used for armv7).
//
// edgec_load("dir/model.so") dlopens the kernel library and reads "dir/model.plan" (text) and
// "dir/model.consts" (weights) written by edgec.targets.tvm.plan. edgec_run calls the kernels in
// plan order with the tvm-ffi packed calling convention (int f(void*, const TVMFFIAny*, int,
// TVMFFIAny*)), each argument a DLTensor*. This file provides the few symbols the kernels import
// from a TVM runtime: TVMFFIErrorSetRaisedFromCStr[Parts], workspace allocation and the parallel
// launch (a pool of edgec_num_threads() threads, below). model.consts is mapped, not read: the
// constant tensors point into the mapping. The queries (names, shapes, dtypes) are edgec_query.cc,
// shared with the VM runtime. Only needs the tvm-ffi C headers (c_api.h, dlpack.h), not libtvm_ffi.
// Build: g++ -std=c++17 -fPIC -shared -I<tvm_ffi/include> edgec_plan_runtime.cc edgec_query.cc -ldl -lpthread
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <tvm/ffi/c_api.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "edgec_query.h"
#include "edgec_runtime.h"

namespace {
thread_local std::string g_kernel_error;  // set by kernels through the error hooks below
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
// The kernels' parallel loops: `threads` - 1 workers plus the launching thread. A launch of n
// tasks (0: one per thread) runs task ids t, t + threads, ... on thread t; each task computes the
// part of the loop its id names, so results do not depend on the thread count. Workers wait on a
// condition variable between launches; launches are serialized (one model run at a time uses it).
class Pool {
 public:
  ~Pool() { Resize(1); }

  int threads() const { return threads_; }

  // Throws std::system_error when a thread cannot be started (the pool is then serial).
  void Resize(int n) {
    std::lock_guard<std::mutex> launch(launch_mu_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    threads_ = 1;
    for (int i = 1; i < n; ++i) workers_.emplace_back(&Pool::Work, this, i, generation_);
    threads_ = n;
  }

  int Launch(ParallelLambda f, void* cdata, int num_task) {
    std::lock_guard<std::mutex> launch(launch_mu_);
    int n = num_task > 0 ? num_task : threads_.load();
    if (threads_.load() == 1 || n == 1) return RunTasks(f, cdata, n, 0, 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      f_ = f, cdata_ = cdata, num_task_ = n, pending_ = threads_ - 1, failed_ = 0, ++generation_;
      barrier_count_ = 0;
    }
    wake_.notify_all();
    int rc = RunTasks(f, cdata, n, 0, threads_);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [&] { return pending_ == 0; });
    return rc != 0 || failed_ ? -1 : 0;
  }

  // All num_task tasks of the current launch meet here (only when they run at once: num_task
  // <= threads; TVM emits a barrier only for such launches).
  int Barrier(ParallelEnv* env) {
    std::unique_lock<std::mutex> lk(mu_);
    int gen = barrier_gen_;
    if (++barrier_count_ == env->num_task) {
      barrier_count_ = 0;
      ++barrier_gen_;
      barrier_cv_.notify_all();
    } else {
      barrier_cv_.wait(lk, [&] { return barrier_gen_ != gen; });
    }
    return 0;
  }

 private:
  int RunTasks(ParallelLambda f, void* cdata, int n, int first, int stride) {
    ParallelEnv env{this, n};
    int rc = 0;
    for (int t = first; t < n; t += stride) rc |= f(t, &env, cdata);
    return rc;
  }

  void Work(int id, unsigned seen) {
    for (;;) {
      ParallelLambda f;
      void* cdata;
      int n;
      {
        std::unique_lock<std::mutex> lk(mu_);
        wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        f = f_, cdata = cdata_, n = num_task_;
      }
      int rc = RunTasks(f, cdata, n, id, threads_);
      std::lock_guard<std::mutex> lk(mu_);
      failed_ |= rc != 0;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex launch_mu_, mu_;
  std::condition_variable wake_, done_, barrier_cv_;
  std::vector<std::thread> workers_;
  std::atomic<int> threads_{1};
  bool stop_ = false;
  unsigned generation_ = 0;
  ParallelLambda f_ = nullptr;
  void* cdata_ = nullptr;
  int num_task_ = 0, pending_ = 0, failed_ = 0, barrier_count_ = 0, barrier_gen_ = 0;
};

Pool& ThePool() {
  static Pool pool;
  return pool;
}

int ParallelLaunch(ParallelLambda f, void* cdata, int num_task) {
  try {
    Pool& pool = ThePool();
    int want = edgec::NumThreads();
    if (pool.threads() != want) pool.Resize(want);
    return pool.Launch(f, cdata, num_task);
  } catch (const std::exception& e) {  // never through the kernel's C frames
    g_kernel_error = std::string("RuntimeError: parallel launch: ") + e.what();
    return -1;
  }
}
int ParallelBarrier(int, ParallelEnv* env) {
  return env && env->sync_handle ? static_cast<Pool*>(env->sync_handle)->Barrier(env) : 0;
}
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
  void* data = nullptr;  // into the .consts mapping for a constant, else owned (aligned_alloc)
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


// model.consts mapped copy-on-write (as the VM runtime maps weights.bin): constant tensors point
// into it; pages are read from the file when a kernel first touches them, never copied at load.
struct ConstsMapping {
  void* base = nullptr;
  size_t size = 0;
  ~ConstsMapping() {
    if (base) munmap(base, size);
  }
};

}  // namespace

struct edgec_model : edgec::ModelIO {
  void* dl = nullptr;
  ConstsMapping consts;
  std::vector<PlanTensor> tensors;
  std::vector<int> in_tid, out_tid;  // plan tensor of input / output i
  std::vector<Call> calls;
  std::vector<bool> input_set;
  bool ran = false;
  ~edgec_model() {
    for (auto& t : tensors)
      if (t.kind != "const") std::free(t.data);
    if (dl) dlclose(dl);
  }
};

const edgec::ModelIO* edgec::AsIO(const edgec_model* m) { return m; }

int edgec::ApplyThreads(int n) {
  try {
    ThePool().Resize(n);
  } catch (const std::exception& e) {
    return Fail(nullptr, EDGEC_ERR_RUN, std::string("edgec_set_num_threads: cannot start threads: ") + e.what());
  }
  return EDGEC_OK;
}

namespace {

using edgec::Fail;

void SetContextSymbol(void* dl, const char* name, void* value) {
  if (void** addr = reinterpret_cast<void**>(dlsym(dl, name))) *addr = value;
}

void MapConsts(ConstsMapping* map, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot read constants '" + path + "'");
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    map->size = static_cast<size_t>(st.st_size);
    map->base = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (map->base == MAP_FAILED) map->base = nullptr;
  }
  close(fd);
  if (!map->base && st.st_size > 0) throw std::runtime_error("cannot map constants '" + path + "'");
}

void LoadPlan(edgec_model* m, const std::string& lib_path) {
  std::string stem = Stem(lib_path);
  std::ifstream in(stem + ".plan");
  if (!in) throw std::runtime_error("cannot read plan '" + stem + ".plan'");
  MapConsts(&m->consts, stem + ".consts");
  int version = 0, n = 0;
  Expect(in, "edgec-plan");
  in >> version;
  if (version != 1) throw std::runtime_error("unsupported plan version " + std::to_string(version));
  Expect(in, "tensors");
  in >> n;
  if (!in || n < 0 || n > (1 << 24)) throw std::runtime_error("plan: bad tensor count");
  m->tensors.resize(n);
  for (int i = 0; i < n; ++i) {
    PlanTensor& t = m->tensors[i];
    int id = -1, ndim = 0;
    in >> id >> t.dtype >> ndim;
    if (id != i || ndim < 0 || ndim > EDGEC_MAX_NDIM) throw std::runtime_error("plan: bad tensor line");
    t.shape.resize(ndim);
    int64_t numel = 1;
    for (auto& d : t.shape) {
      in >> d;
      if (d < 0 || d > (int64_t(1) << 40)) throw std::runtime_error("plan: bad dim of tensor " + std::to_string(i));
      numel *= d;
    }
    in >> t.kind;
    if (!ParseDType(t.dtype, &t.dl.dtype)) throw std::runtime_error("plan: bad dtype " + t.dtype);
    t.bytes = static_cast<size_t>((numel * t.dl.dtype.bits + 7) / 8);
    if (t.kind == "const") {
      size_t off = 0, nbytes = 0;
      in >> off >> nbytes;
      if (nbytes != t.bytes || off > m->consts.size || nbytes > m->consts.size - off || off % 64)
        throw std::runtime_error(stem + ".consts: constant " + std::to_string(i) + " [" + std::to_string(off) +
                                 ", " + std::to_string(off + nbytes) + ") exceeds the file (" +
                                 std::to_string(m->consts.size) + " bytes) or is not 64-byte aligned");
      t.data = static_cast<char*>(m->consts.base) + off;
    } else {
      if (t.kind == "input") {
        int idx;
        in >> idx;
      } else if (t.kind != "temp") {
        throw std::runtime_error("plan: bad tensor kind " + t.kind);
      }
      t.data = std::aligned_alloc(64, (t.bytes + 63) / 64 * 64 + 64);
      if (!t.data) throw std::bad_alloc();
    }
    t.dl.data = t.data;
    t.dl.device = DLDevice{kDLCPU, 0};
    t.dl.ndim = ndim;
    t.dl.shape = t.shape.data();
    t.dl.strides = nullptr;
    t.dl.byte_offset = 0;
  }
  for (bool inputs : {true, false}) {
    Expect(in, inputs ? "inputs" : "outputs");
    in >> n;
    for (int i = 0; in && i < n; ++i) {
      int tid;
      std::string name;
      in >> tid >> name;
      if (tid < 0 || tid >= static_cast<int>(m->tensors.size())) throw std::runtime_error("plan: bad io");
      const PlanTensor& t = m->tensors[tid];
      (inputs ? m->in_tid : m->out_tid).push_back(tid);
      (inputs ? m->inputs : m->outputs).push_back(edgec::FixedInfo(Unescape(name), t.dtype, t.shape));
    }
  }
  Expect(in, "calls");
  in >> n;
  for (int i = 0; in && i < n; ++i) {
    Call c;
    int nargs = 0;
    in >> c.symbol >> nargs;
    for (int k = 0; in && k < nargs; ++k) {
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

// Plan tensor of input/output idx; NULL (error recorded) on a bad index or NULL model.
PlanTensor* Tensor(edgec_model* m, bool input, int idx) {
  if (!edgec::Info(m, input, idx)) return nullptr;
  return &m->tensors[(input ? m->in_tid : m->out_tid)[idx]];
}
const PlanTensor* Tensor(const edgec_model* m, bool input, int idx) {
  return Tensor(const_cast<edgec_model*>(m), input, idx);
}

}  // namespace

extern "C" {

edgec_model* edgec_load_with_metadata(const char* lib_path, const char*, char* err, size_t errlen) {
  try {
    auto m = std::make_unique<edgec_model>();
    if (!lib_path) throw std::runtime_error("lib_path is NULL");
    std::string path = lib_path;  // dlopen searches the library path for a name without '/'
    if (path.find('/') == std::string::npos) path = "./" + path;
    if (!std::ifstream(path).good()) throw std::runtime_error("no such file: " + std::string(lib_path));
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
    return m.release();
  } catch (const std::exception& e) {
    Fail(nullptr, EDGEC_ERR_LOAD, std::string("edgec_load(") + (lib_path ? lib_path : "") + "): " + e.what());
    edgec::CopyErr(err, errlen, edgec::LastError());
    return nullptr;
  }
}

edgec_model* edgec_load(const char* lib_path, char* err, size_t errlen) {
  return edgec_load_with_metadata(lib_path, nullptr, err, errlen);
}
void edgec_free(edgec_model* m) { delete m; }

int edgec_set_input_shape(edgec_model* m, int idx, const int64_t* shape, int ndim, const char* dtype) {
  if (!m || (!shape && ndim > 0) || ndim < 0 || ndim > EDGEC_MAX_NDIM)
    return Fail(m, EDGEC_ERR_ARG, "edgec_set_input_shape: bad arguments");
  const edgec::TensorInfo* t = edgec::Info(m, true, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (dtype && !edgec::DTypeBits(dtype)) return Fail(m, EDGEC_ERR_ARG, std::string("unknown dtype '") + dtype + "'");
  std::string why = edgec::ShapeMismatch(*t, std::vector<int64_t>(shape, shape + ndim), dtype ? dtype : t->dtype);
  if (!why.empty())
    return Fail(m, EDGEC_ERR_SHAPE, "edgec_set_input_shape: input '" + t->name + "': " + why +
                                        " (call-plan models have fixed input shapes)");
  return EDGEC_OK;
}

int edgec_set_input_from_output(edgec_model* m, int in_idx, int out_idx) {
  PlanTensor* in = Tensor(m, true, in_idx);
  const PlanTensor* out = in ? Tensor(m, false, out_idx) : nullptr;
  if (!in || !out) return m ? EDGEC_ERR_INDEX : EDGEC_ERR_ARG;
  if (!m->ran) return Fail(m, EDGEC_ERR_STATE, "edgec_set_input_from_output: call edgec_run first");
  if (in->shape != out->shape || in->dtype != out->dtype)
    return Fail(m, EDGEC_ERR_SHAPE, "edgec_set_input_from_output: output '" + m->outputs[out_idx].name +
                                        "' does not fit input '" + m->inputs[in_idx].name +
                                        "' (call-plan models have fixed shapes)");
  if (in != out) std::memcpy(in->data, out->data, in->bytes);  // plan tensors are preallocated
  m->input_set[in_idx] = true;
  return EDGEC_OK;
}

const void* edgec_output_data(const edgec_model* m, int idx) {
  const PlanTensor* t = Tensor(m, false, idx);
  if (!t) return nullptr;
  if (!m->ran) {
    Fail(m, EDGEC_ERR_STATE, "edgec_output_data: call edgec_run first");
    return nullptr;
  }
  return t->data;
}

int edgec_set_input(edgec_model* m, int idx, const void* data, size_t bytes) {
  if (!m || (!data && bytes)) return Fail(m, EDGEC_ERR_ARG, "edgec_set_input: NULL argument");
  PlanTensor* t = Tensor(m, true, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (bytes != t->bytes)
    return Fail(m, EDGEC_ERR_SIZE, "input '" + m->inputs[idx].name + "' needs " + std::to_string(t->bytes) +
                                       " bytes, got " + std::to_string(bytes));
  if (bytes) std::memcpy(t->data, data, bytes);
  m->input_set[idx] = true;
  return EDGEC_OK;
}

int edgec_run(edgec_model* m) {
  if (!m) return Fail(m, EDGEC_ERR_ARG, "edgec_run: NULL model");
  for (size_t i = 0; i < m->inputs.size(); ++i)
    if (!m->input_set[i]) return Fail(m, EDGEC_ERR_STATE, "input '" + m->inputs[i].name + "' was not set");
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
  if (!m || (!dst && bytes)) return Fail(m, EDGEC_ERR_ARG, "edgec_get_output: NULL argument");
  const PlanTensor* t = Tensor(m, false, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (!m->ran) return Fail(m, EDGEC_ERR_STATE, "edgec_get_output: call edgec_run first");
  if (bytes < t->bytes)
    return Fail(m, EDGEC_ERR_SIZE, "output '" + m->outputs[idx].name + "' needs " + std::to_string(t->bytes) +
                                       " bytes, buffer has " + std::to_string(bytes));
  if (t->bytes) std::memcpy(dst, t->data, t->bytes);
  return EDGEC_OK;
}

}  // extern "C"
